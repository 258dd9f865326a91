// An unmodified Trystero 0.25.4 page with `iceTransportPolicy: 'relay'` joins a daemon's room
// through a real coturn on loopback, and so does the daemon (`--ice-policy relay`).
import {spawn} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import assert from 'node:assert/strict'
import {Daemon, launchBrowser, runTests, until, freePort, serveTrysteroPage} from './lib.mjs'

const USER = 'page'
const PASSWORD = 'through-the-relay'
const turnPort = await freePort()
const tmp = mkdtempSync(join(tmpdir(), 'meshrtc-turn-'))
const turn = spawn('turnserver', [
  '--listening-ip', '127.0.0.1', '--listening-port', String(turnPort), '--relay-ip', '127.0.0.1',
  '--realm', 'meshrtc.test', '--lt-cred-mech', '--user', `${USER}:${PASSWORD}`,
  '--allow-loopback-peers', '--no-cli', '--no-tls', '--no-dtls', '--no-software-attribute',
  '--userdb', join(tmp, 'turndb'), '--pidfile', join(tmp, 'turn.pid'), '--log-file', 'stdout'
], {stdio: 'ignore'})
const turnUrl = `turn:127.0.0.1:${turnPort}`

// Notes each connection's states and the remote candidates it is given, for a failure's report.
const trace = `
window.PC_TRACE = []
const Native = window.RTCPeerConnection
window.RTCPeerConnection = class extends Native {
  constructor(...args) {
    super(...args)
    const log = []
    window.PC_TRACE.push(log)
    ;(window.PCS ??= []).push(this)
    this.addEventListener('iceconnectionstatechange', () => log.push('ice ' + this.iceConnectionState))
    this.addEventListener('connectionstatechange', () => log.push('pc ' + this.connectionState))
    const note = channel => {
      this.channel = channel
      log.push('channel ' + channel.label)
      channel.addEventListener('close', () => log.push('channel closed'))
    }
    this.addEventListener('datachannel', e => note(e.channel))
    const create = this.createDataChannel.bind(this)
    this.createDataChannel = (...a) => { const c = create(...a); note(c); return c }
    this.addEventListener('icecandidate', e => log.push('local ' + (e.candidate?.candidate ?? 'end')))
    const add = this.addIceCandidate.bind(this)
    this.addIceCandidate = c => { log.push('remote ' + (c?.candidate ?? c)); return add(c) }
  }
}`
const {port, server} = await serveTrysteroPage(trace)
const browser = await launchBrowser()
const context = await browser.newContext()
const APP = 'trystero-turn'
const daemons = []

await runTests(
  {
    async 'a relay-only Trystero page and a relay-only daemon meet through coturn'() {
      const d = await Daemon.withEmbeddedRelay(['--ice-server', turnUrl, '--ice-username', USER, '--ice-credential', PASSWORD, '--ice-policy', 'relay'])
      daemons.push(d)
      const room = 'through-turn'
      const listener = d.listen(room, {app: APP})
      const page = await context.newPage()
      await page.goto(`http://127.0.0.1:${port}/`)
      await until('trystero loaded', () => page.evaluate(() => Boolean(window.trysteroReady)))
      const t0 = Date.now()
      await page.evaluate(({relay, room, app, turn, user, pass}) => {
        const M = (window.M = {joins: [], msgs: []})
        const r = (window.R = window.trysteroReady.joinRoom({
          appId: app,
          relayConfig: {urls: [relay]},
          rtcConfig: {iceServers: [{urls: turn, username: user, credential: pass}], iceTransportPolicy: 'relay'}
        }, room))
        r.onPeerJoin = id => M.joins.push(id)
        const chat = (window.CHAT = r.makeAction('chat'))
        chat.onMessage = (data, {peerId: from}) => M.msgs.push({data, from})
      }, {relay: d.relayUrl, room, app: APP, turn: turnUrl, user: USER, pass: PASSWORD})
      await until('the page joins the daemon through TURN', () => page.evaluate(id => window.M.joins.includes(id), d.peerId), 30000).catch(async e => {
        console.log('# page connections: ' + JSON.stringify(await page.evaluate(() => window.PC_TRACE)))
        throw e
      })
      console.log(`# turn: page joined the daemon through coturn in ${Date.now() - t0} ms`)
      const pair = await page.evaluate(async () => {
        const pc = Object.values(window.R.getPeers())[0]
        const stats = await pc.getStats()
        let out = null
        stats.forEach(s => {
          if (s.type === 'transport' && s.selectedCandidatePairId) {
            const p = stats.get(s.selectedCandidatePairId)
            out = {local: stats.get(p.localCandidateId)?.candidateType, remote: stats.get(p.remoteCandidateId)?.candidateType}
          }
        })
        return out
      })
      console.log(`# turn: the page's selected pair ${JSON.stringify(pair)}`)
      assert.equal(pair?.local, 'relay', 'the page uses its relayed candidate')
      // The engine reports the selected pair a little after the link opens: wait for it.
      const seen = []
      const peers = await until("the daemon's selected pair", () => {
        const p = JSON.parse(d.cli('peers', room, '--app', APP, '--json'))
        seen.push(`${Date.now() - t0} ms: ${JSON.stringify(p)}`)
        return p[0]?.path ? p : null
      }, 20000).catch(async e => {
        console.log(`# turn: what the daemon said of its peers:\n# ${[...seen.slice(0, 3), '…', ...seen.slice(-3)].join('\n# ')}`)
        console.log('# page connections: ' + JSON.stringify(await page.evaluate(() => window.PC_TRACE)))
        throw e
      })
      console.log(`# turn: the daemon's path ${JSON.stringify(peers[0]?.path)}`)
      assert.equal(peers[0]?.path?.local?.type, 'relay', "the daemon's side is relayed too")
      d.cli('send', room, 'chat', 'hello through coturn', '--app', APP)
      await until('the message at the page', () => page.evaluate(() => window.M.msgs.find(m => m.data === 'hello through coturn')), 15000)
      await page.evaluate(() => window.CHAT.send('and back'))
      await listener.wait('the page\'s message at the daemon', m => m.event === 'message' && m.data === 'and back', 15000)
      // The daemon leaves; its link idles and it closes it. The close must reach the page
      // through the relays (not wait ~30 s for ICE consent), or the page would not reconnect.
      await page.evaluate(() => { window.LINK = window.PCS.find(pc => pc.channel?.readyState === 'open') })
      await listener.stop()
      const t1 = Date.now()
      await until('the page sees the daemon close the relayed link', () => page.evaluate(() => window.LINK?.channel.readyState === 'closed'), 15000)
      console.log(`# turn: the daemon's close reached the page after ${Date.now() - t1} ms (the daemon idles a link 5 s)`)
      await page.close()
    }
  },
  async () => {
    await browser.close()
    server.close()
    for (const d of daemons) await d.destroy()
    turn.kill('SIGKILL')
  },
  async () => {
    for (const d of daemons) console.log(`# daemon log:\n${d.log.split('\n').slice(-30).join('\n')}`)
  }
)

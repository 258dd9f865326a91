// The mDNS path: a Chromium page that hides its host addresses behind `.local` names (its
// default) joins a daemon on another host, and only the daemon's resolving those names makes the
// link possible.
//
// Two network namespaces joined by a veth pair stand for two hosts on a LAN where multicast
// works: the daemon in one (10.77.0.1), Chromium in the other (10.77.0.2). A stateful filter on
// the daemon's host drops every new UDP flow the page starts (mDNS aside), so the page's own
// connectivity checks cannot reach the daemon and the daemon never learns the page's address
// from them: the link forms only if the daemon resolves the page's `.local` candidates and
// checks toward them first. A second daemon with mDNS off must therefore never link, which
// shows the test can fail for the reason it is named for. Needs root (namespaces, nft).
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, writeFileSync, chmodSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {chromium} from 'playwright-core'
import {Daemon, runTests, until, sleep, trysteroPage, freePort} from './lib.mjs'

// A test that cannot run fails and says why: a silent pass would hide that it never ran.
if (process.getuid?.() !== 0) {
  console.log('not ok - the mDNS test needs root (network namespaces and nft); run it as root (CI does)')
  process.exit(1)
}

const NS_D = `mrtc-mdns-d-${process.pid}`
const NS_P = `mrtc-mdns-p-${process.pid}`
const sh = (...args) => execFileSync(args[0], args.slice(1), {stdio: ['ignore', 'pipe', 'pipe']}).toString()
const inNs = (ns, ...args) => sh('ip', 'netns', 'exec', ns, ...args)

const teardown = () => {
  for (const ns of [NS_D, NS_P]) {
    try {
      sh('ip', 'netns', 'del', ns)
    } catch {}
  }
}
teardown()
sh('ip', 'netns', 'add', NS_D)
sh('ip', 'netns', 'add', NS_P)
sh('ip', 'link', 'add', 'mrtcd0', 'netns', NS_D, 'type', 'veth', 'peer', 'name', 'mrtcp0', 'netns', NS_P)
for (const [ns, dev, addr] of [[NS_D, 'mrtcd0', '10.77.0.1/24'], [NS_P, 'mrtcp0', '10.77.0.2/24']]) {
  inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
  inNs(ns, 'ip', 'addr', 'add', addr, 'dev', dev)
  inNs(ns, 'ip', 'link', 'set', dev, 'up', 'multicast', 'on')
  inNs(ns, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', dev)
  // A default route, as on any LAN host: without one Chromium finds no usable interface.
  inNs(ns, 'ip', 'route', 'add', 'default', 'dev', dev)
}
inNs(NS_D, 'nft', 'add table inet mdnstest')
inNs(NS_D, 'nft', 'add chain inet mdnstest input { type filter hook input priority 0 ; }')
inNs(NS_D, 'nft', 'add rule inet mdnstest input ip saddr 10.77.0.2 udp dport != 5353 ct state new counter drop')

// Chromium in the page's namespace; Playwright drives it over a pipe, so no network is needed.
const tmp = mkdtempSync(join(tmpdir(), 'meshrtc-mdns-'))
const wrapper = join(tmp, 'chromium-in-netns')
writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS_P} ${process.env.CHROMIUM ?? '/usr/bin/chromium'} "$@"\n`)
chmodSync(wrapper, 0o755)
const browser = await chromium.launch({
  executablePath: wrapper,
  headless: true,
  // No --allow-loopback-in-peer-connection and mDNS hiding left on: the page's host candidates
  // are `.local` names, as for any page a user opens. Local Network Access checks are off, as
  // when a user lets a page reach their LAN (here: the relay on the daemon's host).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-features=LocalNetworkAccessChecks']
})
const context = await browser.newContext()
// Records the page's own ICE candidates.
const {bundle, page: html} = await trysteroPage(`window.CANDIDATES = []
const Native = window.RTCPeerConnection
window.RTCPeerConnection = class extends Native {
  constructor(...a) {
    super(...a)
    this.addEventListener('icegatheringstatechange', () => {
      if (this.iceGatheringState === 'complete') window.CANDIDATES.push(...(this.localDescription?.sdp ?? '').split('\\r\\n').filter(l => l.startsWith('a=candidate')))
    })
  }
}`)
await context.route('http://localhost:9/**', route =>
  route.fulfill(route.request().url().endsWith('/trystero.js') ? {contentType: 'text/javascript', body: bundle} : {contentType: 'text/html', body: html})
)

const config = mdns => {
  const path = join(tmp, `mdns-${mdns}.toml`)
  writeFileSync(path, `mdns = "${mdns}"\n`)
  return path
}
const relayPort = await freePort()
const resolving = new Daemon({embedded: `10.77.0.1:${relayPort}`, netns: NS_D, extra: ['--config', config('query')]})
const deaf = new Daemon({relays: [`ws://10.77.0.1:${relayPort}`], netns: NS_D, extra: ['--config', config('off')]})
// The harness binds ICE to 127.0.0.1; here the daemons use their host's LAN address.
for (const d of [resolving, deaf]) d.iceAddr = '10.77.0.1'
await resolving.start()
await deaf.start()
const APP = 'mdns-test'

const pageConsole = []
const openPage = async room => {
  const page = await context.newPage()
  page.on('console', m => pageConsole.push(`${room}: ${m.text()}`))
  await page.goto('http://localhost:9/')
  await until('trystero loaded', () => page.evaluate(() => Boolean(window.trysteroReady)))
  page.peerId = await page.evaluate(() => window.trysteroReady.selfId)
  await page.evaluate(
    ({relay, room, app}) => {
      window.joined = []
      window.got = []
      const r = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, room)
      r.onPeerJoin = id => window.joined.push(id)
      const chat = r.makeAction('chat')
      window.send = d => chat.send(d)
      chat.onMessage = d => window.got.push(d)
    },
    {relay: resolving.relayUrl, room, app: APP}
  )
  return page
}

await runTests(
  {
    'a page behind .local host names joins a daemon that resolves them': async () => {
      const listen = resolving.listen('lan', {app: APP})
      await sleep(300)
      const page = await openPage('lan')
      await listen.wait('daemon sees the page', l => l.event === 'peer:join' && l.peer === page.peerId, 30000)
      await until('page sees the daemon', () => page.evaluate(id => window.joined.includes(id), resolving.peerId))
      const cands = await page.evaluate(() => window.CANDIDATES)
      assert.ok(cands.length > 0 && cands.every(c => !c.includes('10.77.0.2')), `the page revealed its address: ${JSON.stringify(cands)}`)
      assert.ok(cands.some(c => / [0-9a-f-]+\.local /.test(c)), `no .local candidate: ${JSON.stringify(cands)}`)
      await page.evaluate(() => window.send('over mdns'))
      await listen.wait('message from the page', l => l.event === 'message' && l.data === 'over mdns')
      resolving.cli('send', 'lan', 'chat', 'back over mdns', '--app', APP)
      await until('message at the page', () => page.evaluate(() => window.got.includes('back over mdns')))
      console.log(`# page candidates: ${cands.length}, all .local`)
      await listen.stop()
      await page.close()
    },
    'the same page cannot reach a daemon with mDNS off (the filter holds)': async () => {
      const listen = deaf.listen('lan-deaf', {app: APP})
      await sleep(300)
      const page = await openPage('lan-deaf')
      await listen.wait('the deaf daemon hears the page announce', l => l.event === 'peer:seen' && l.peer === page.peerId, 30000)
      await sleep(15000)
      assert.ok(!listen.find(l => l.event === 'peer:join' && l.peer === page.peerId), 'linked without resolving .local names')
      assert.ok(!(await page.evaluate(id => window.joined.includes(id), deaf.peerId)))
      // The daemon is alive and serving, and the filter did stop the page's own checks.
      assert.ok((await deaf.status()).peer_id === deaf.peerId)
      const dropped = Number(inNs(NS_D, 'nft', 'list ruleset').match(/packets (\d+)/)?.[1] ?? 0)
      console.log(`# filter: ${dropped} packets of the page's own new flows dropped`)
      assert.ok(dropped > 0, 'the filter never dropped anything: the negative check proves nothing')
      await listen.stop()
      await page.close()
    }
  },
  async () => {
    await browser.close()
    for (const d of [resolving, deaf]) await d.destroy()
    teardown()
  },
  async () => {
    console.log(`# page console:\n# ${pageConsole.slice(-20).join('\n# ')}`)
    for (const d of [resolving, deaf]) console.log(`# log of daemon ${d.peerId}:\n# ${d.log.split('\n').slice(-30).join('\n# ')}`)
  }
)

// A hostile peer in a real browser: a page that joins with Trystero, then writes raw garbage on
// the shared data channel. The daemon must drop and count every bad frame and keep working.
import assert from 'node:assert/strict'
import {Daemon, launchBrowser, runTests, until, serveTrysteroPage} from './lib.mjs'

// Captures every data channel the page creates, before Trystero loads.
// Also the raw wire helpers: an outer data frame and an action chunk, as Trystero lays them out.
const prelude = `window.capturedChannels = [];
const create = RTCPeerConnection.prototype.createDataChannel;
RTCPeerConnection.prototype.createDataChannel = function (...args) {
  const ch = create.apply(this, args); window.capturedChannels.push(ch); return ch;
};
window.wire = {
  enc: new TextEncoder(),
  async token(app, room) {
    const digest = await crypto.subtle.digest('SHA-256', this.enc.encode('Trystero:' + app + ':' + room));
    return this.enc.encode([...new Uint8Array(digest)].map(x => x.toString(16).padStart(2, '0')).join(''));
  },
  frame(tokenBytes, body) {
    const f = new Uint8Array(3 + tokenBytes.length + body.length);
    f[0] = 1; f[1] = tokenBytes.length >> 8; f[2] = tokenBytes.length & 255;
    f.set(tokenBytes, 3); f.set(body, 3 + tokenBytes.length);
    return f;
  },
  chunk(action, nonce, tag, progress, payload) {
    const c = new Uint8Array(36 + payload.length);
    c.set(this.enc.encode(action)); c[32] = nonce >> 8; c[33] = nonce & 255; c[34] = tag; c[35] = progress;
    c.set(payload, 36);
    return c;
  },
  lastOpenChannel() { return window.capturedChannels.filter(c => c.readyState === 'open').at(-1); },
};`
const {port, server} = await serveTrysteroPage(prelude)
const browser = await launchBrowser()
const page = await (await browser.newContext()).newPage()
await page.goto(`http://127.0.0.1:${port}/`)
await until('trystero loaded', () => page.evaluate(() => Boolean(window.trysteroReady)))
const pageId = await page.evaluate(() => window.trysteroReady.selfId)
// The smaller id offers, so a daemon with a larger id lets the page create the channel.
const d = await Daemon.withIdWhere(id => id > pageId, {embedded: 'auto', extra: ['--config', await writeConfig()]})
const APP = 'hostile-test'

async function writeConfig() {
  const {writeFileSync, mkdtempSync} = await import('node:fs')
  const {join} = await import('node:path')
  const {tmpdir} = await import('node:os')
  const path = join(mkdtempSync(join(tmpdir(), 'meshrtc-hostile-')), 'meshrtcd.toml')
  writeFileSync(path, 'reassembly_timeout_ms = 2000\n')
  return path
}

const drops = async () => (await d.status()).drops

await runTests(
  {
    'garbage frames and chunk sequences are dropped, counted, and nothing else is lost': async () => {
      const listen = d.listen('room', {app: APP})
      await page.evaluate(
        ({relay, app}) => {
          const r = (window.R = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, 'room'))
          window.joined = []
          r.onPeerJoin = id => window.joined.push(id)
          window.chat = r.makeAction('chat')
        },
        {relay: d.relayUrl, app: APP}
      )
      await until('page joined the daemon', () => page.evaluate(id => window.joined.includes(id), d.peerId))
      await listen.wait('daemon sees the page', l => l.event === 'peer:join' && l.peer === pageId)
      const sent = await page.evaluate(async app => {
        const ch = window.capturedChannels.find(c => c.readyState === 'open')
        const {enc} = window.wire
        const token = await window.wire.token(app, 'room')
        const frame = (t, body) => window.wire.frame(t, body)
        const chunk = (...a) => window.wire.chunk(...a)
        let n = 0
        const send = b => {
          ch.send(b)
          n++
        }
        send(new Uint8Array([7, 1, 2, 3])) // unknown frame tag
        send(new Uint8Array([1, 0])) // truncated
        send(frame(enc.encode('not-a-room-token'), chunk('chat', 0, 1, 255, enc.encode('x')))) // unknown room
        send(frame(token, new Uint8Array(20)) ) // chunk shorter than its header
        send(frame(token, chunk('chat', 1, 1, 255, new Uint8Array(17000)))) // oversized chunk
        send(frame(token, chunk('chat', 2, 1 | 8, 255, enc.encode('{not json')))) // JSON bit, not JSON
        send(frame(token, chunk('@_bogus', 0, 1, 255, new Uint8Array(0)))) // unknown internal action
        // Never-ending messages: first chunks of 100 messages that never finish.
        for (let i = 0; i < 100; i++) send(frame(token, chunk('chat', 1000 + i, 4 | 8, 1, new Uint8Array(16000))))
        return n
      }, APP)
      assert.ok(sent > 100)
      // A normal message after the garbage still arrives, in order.
      await page.evaluate(() => window.chat.send('still friends'))
      await listen.wait('normal message', l => l.event === 'message' && l.data === 'still friends')
      const counted = await drops()
      for (const name of ['frame_malformed', 'frame_unknown_room', 'chunk_malformed', 'chunk_bad_payload', 'action_unknown_internal', 'reassembly_too_many']) {
        assert.ok(counted[name] > 0, `${name} not counted: ${JSON.stringify(counted)}`)
      }
      // The never-ending messages expire (reassembly_timeout_ms = 2000 here).
      await until('partial messages expire', async () => (await drops()).reassembly_expired > 0, 10000)
      const rtt = parseFloat(d.cli('ping', 'room', pageId, '--app', APP))
      assert.ok(rtt >= 0 && rtt < 5000, `ping ${rtt} ms`)
      console.log(`# drops after the hostile page: ${JSON.stringify(await drops())}`)
      await listen.stop()
    },

    'a page that does not seal cannot pass off envelopes in a password room': async () => {
      const listen = d.listen('vault', {app: APP, password: 'pw'})
      await page.evaluate(
        ({relay, app}) => {
          window.R.leave()
          const r = (window.V = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}, password: 'pw'}, 'vault'))
          window.joinedVault = []
          r.onPeerJoin = id => window.joinedVault.push(id)
          window.vaultChat = r.makeAction('chat')
        },
        {relay: d.relayUrl, app: APP}
      )
      await until('page joined the password room', () => page.evaluate(id => window.joinedVault.includes(id), d.peerId))
      const joined = await listen.wait('daemon sees the page', l => l.event === 'peer:join' && l.peer === pageId)
      assert.equal(joined.security, 'transport')
      const before = await drops()
      await page.evaluate(async app => {
        const {wire} = window
        const ch = wire.lastOpenChannel()
        const token = await wire.token(app, 'vault')
        // A binary "envelope" from a peer that never offered to seal: refused, not opened.
        ch.send(wire.frame(token, wire.chunk('@_mre2e', 1, 1 | 4, 255, new Uint8Array(80))))
        // An envelope that is not even binary.
        ch.send(wire.frame(token, wire.chunk('@_mre2e', 2, 1, 255, wire.enc.encode('not an envelope'))))
      }, APP)
      const grew = (after, name) => (after[name] ?? 0) > (before[name] ?? 0)
      await until('e2e_unexpected and e2e_malformed counted', async () => {
        const after = await drops()
        return grew(after, 'e2e_unexpected') && grew(after, 'e2e_malformed')
      })
      // The page's own plain messages are fine at its level, and nothing else arrived.
      await page.evaluate(() => window.vaultChat.send('plain and fine'))
      await listen.wait('a plain message from the page', l => l.event === 'message' && l.data === 'plain and fine')
      assert.deepEqual(listen.lines.filter(l => l.event === 'message').map(l => l.data), ['plain and fine'])
      await listen.stop()
    }
  },
  async () => {
    await browser.close()
    server.close()
    await d.destroy()
  }
)

// Interop: pages running unmodified Trystero 0.25.4 (npm, bundled with esbuild) share rooms
// with meshrtcd, through the daemon's embedded relay on loopback, in headless Chromium.
import {writeFileSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import assert from 'node:assert/strict'
import {Daemon, launchBrowser, runTests, until, sleep, serveTrysteroPage} from './lib.mjs'

// Records every RTCPeerConnection the page makes (state changes, data channel traffic), so a
// failed test can say how far the page's side of a link got. Trystero itself is unmodified.
const tracePeerConnections = `
window.PC_TRACE = []
const Native = window.RTCPeerConnection
window.RTCPeerConnection = class extends Native {
  constructor(...args) {
    super(...args)
    const t = {n: window.PC_TRACE.length, at: Math.round(performance.now()), log: []}
    window.PC_TRACE.push(t)
    const note = what => t.log.push(Math.round(performance.now()) + ' ' + what)
    const channels = []
    this.addEventListener('connectionstatechange', () => note('pc ' + this.connectionState))
    this.addEventListener('iceconnectionstatechange', () => note('ice ' + this.iceConnectionState))
    const watch = ch => {
      channels.push(ch)
      note('channel ' + ch.label + ' ' + ch.readyState)
      ch.addEventListener('open', () => note('channel open'))
      ch.addEventListener('close', () => note('channel close'))
      let n = 0
      ch.addEventListener('message', () => { if (++n <= 5) note('channel message ' + n) })
    }
    this.addEventListener('datachannel', e => watch(e.channel))
    const create = this.createDataChannel.bind(this)
    this.createDataChannel = (...a) => { const ch = create(...a); watch(ch); return ch }
    window.PC_OBJECTS.push({pc: this, channels})
  }
}
window.PC_OBJECTS = []
// What each of the page's links knows now: its layers, what waits in the channel's buffer, and
// what crossed it (the page's side of a stalled transfer).
window.linkReport = async () => {
  const out = []
  for (const [n, {pc, channels}] of window.PC_OBJECTS.entries()) {
    if (pc.connectionState === 'closed') continue
    const stats = {}
    for (const s of (await pc.getStats()).values()) {
      if (s.type === 'data-channel') stats[s.label] = s.messagesReceived + ' msgs / ' + s.bytesReceived + ' B received, ' + s.messagesSent + ' msgs / ' + s.bytesSent + ' B sent'
    }
    out.push('pc ' + n + ': ' + pc.connectionState + ', ice ' + pc.iceConnectionState + ', sctp ' + (pc.sctp?.state ?? 'none') + '; ' +
      channels.map(ch => 'channel ' + ch.label + ' ' + ch.readyState + ', ' + ch.bufferedAmount + ' B buffered, ' + (stats[ch.label] ?? 'no stats')).join('; '))
  }
  return out
}`
const {port, server} = await serveTrysteroPage(tracePeerConnections)
const browser = await launchBrowser()
const context = await browser.newContext()
const APP = 'trystero-interop'
const daemons = []
const tmp = mkdtempSync(join(tmpdir(), 'meshrtc-interop-'))

/**
 * Proves a `listen` is alive and reading before a negative check counts: a local send on the
 * same daemon and room must show up in it (local sessions see each other's sends).
 */
let probes = 0
const assertListening = async (daemon, listener, room, password = '') => {
  const probe = `alive-probe-${++probes}`
  daemon.cli('send', room, 'probe', probe, '--app', APP, '--password', password)
  await listener.wait(`listener of ${room} still reading`, m => m.event === 'message' && m.data === probe && m.local, 10000)
}

/** Opens a Trystero page (not yet in a room); returns it with its peer id. */
const openPages = new Set()
const openPage = async () => {
  const page = await context.newPage()
  openPages.add(page)
  page.on('close', () => openPages.delete(page))
  await page.goto(`http://127.0.0.1:${port}/`)
  await until('trystero loaded', () => page.evaluate(() => Boolean(window.trysteroReady)))
  page.peerId = await page.evaluate(() => window.trysteroReady.selfId)
  return page
}

/** Joins a room in the page with Trystero's own API; events land in window.T. */
const pageJoin = (page, relay, room, password) =>
  page.evaluate(
    ({relay, room, password, app}) => {
      const T = (window.T = {joins: [], leaves: [], msgs: [], progress: [], joinedAt: {}, startedAt: performance.now()})
      const config = {appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}
      if (password) config.password = password
      const r = (window.R = window.trysteroReady.joinRoom(config, room))
      r.onPeerJoin = id => {
        T.joins.push(id)
        T.joinedAt[id] = performance.now() - T.startedAt
      }
      r.onPeerLeave = id => T.leaves.push(id)
      const chat = r.makeAction('chat')
      window.send = (data, target, metadata) => chat.send(data, {...(target ? {target} : {}), ...(metadata ? {metadata} : {})})
      chat.onMessage = (data, {peerId: from, metadata: meta}) => {
        const binary = data instanceof ArrayBuffer || ArrayBuffer.isView(data)
        let summary = data
        if (binary) {
          const u = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          let sum = 0
          for (let i = 0; i < u.length; i++) sum = (sum * 31 + u[i]) >>> 0
          summary = {bytes: u.length, sum}
        }
        T.msgs.push({data: summary, from, meta: meta ?? null, binary})
      }
      chat.onReceiveProgress = (fraction, {peerId: from}) => T.progress.push({fraction, from})
    },
    {relay, room, password, app: APP}
  )

const T = page => page.evaluate(() => window.T)
const pageMsg = (page, pred, what, ms) => until(what, async () => (await T(page)).msgs.find(pred), ms)
const isJoin = (peer, room) => l => l.event === 'peer:join' && l.peer === peer && (!room || l.room === room)
const isLeave = peer => l => l.event === 'peer:leave' && l.peer === peer
const checksum = bytes => bytes.reduce((s, b) => (s * 31 + b) >>> 0, 0)

// Daemons on both sides of the page's id, so both offer directions are exercised.
const page1 = await openPage()
const low = await Daemon.withIdWhere(id => id < page1.peerId, {embedded: 'auto'})
const high = await Daemon.withIdWhere(id => id > page1.peerId, {relays: [low.relayUrl]})
daemons.push(low, high)
const relay = low.relayUrl

await runTests(
  {
    'page and daemons see each other join, both offer directions': async () => {
      const room = 'join'
      const ll = low.listen(room, {app: APP})
      const hl = high.listen(room, {app: APP})
      await sleep(300)
      await pageJoin(page1, relay, room)
      await until('page sees both daemons', async () => {
        const t = await T(page1)
        return t.joins.includes(low.peerId) && t.joins.includes(high.peerId)
      })
      await ll.wait('low sees page', isJoin(page1.peerId))
      await hl.wait('high sees page', isJoin(page1.peerId))
      const t = await T(page1)
      console.log(`# page ${page1.peerId}: daemon ${low.peerId} offers (smaller), daemon ${high.peerId} answers`)
      console.log(`# page->daemon join latency: ${t.joinedAt[low.peerId].toFixed(0)} ms (smaller id), ${t.joinedAt[high.peerId].toFixed(0)} ms (larger id)`)
      page1.listeners = {low: ll, high: hl}
    },

    'messages both ways: text, JSON, binary with metadata, 3 MiB with progress': async () => {
      const {low: ll, high: hl} = page1.listeners
      await page1.evaluate(() => window.send('hello daemons'))
      await page1.evaluate(() => window.send({kind: 'json', list: [1, 2, 3]}))
      await page1.evaluate(() => window.send(new Uint8Array([9, 8, 7]), null, {name: 'tiny.bin'}))
      await page1.evaluate(() => {
        const big = new Uint8Array(3 * 1024 * 1024)
        for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 255
        return window.send(big, null, {name: 'big.bin'})
      })
      for (const l of [ll, hl]) {
        await l.wait('text', m => m.event === 'message' && m.data === 'hello daemons' && m.from === page1.peerId)
        await l.wait('json', m => m.event === 'message' && m.data?.kind === 'json' && m.data.list.length === 3)
        const tiny = await l.wait('binary', m => m.event === 'message' && m.meta?.name === 'tiny.bin')
        assert.deepEqual([...Buffer.from(tiny.binary, 'base64')], [9, 8, 7])
        const big = await l.wait('3 MiB', m => m.event === 'message' && m.meta?.name === 'big.bin', 20000)
        const bytes = Buffer.from(big.binary, 'base64')
        assert.equal(bytes.length, 3 * 1024 * 1024)
        assert.ok(bytes.every((b, i) => b === ((i * 7 + 3) & 255)), '3 MiB from the page corrupted')
      }
      low.cli('send', 'join', 'chat', 'hello page', '--app', APP)
      low.cli('send', 'join', 'chat', '{"from":"daemon","n":2}', '--app', APP)
      const tinyPath = join(tmp, 'tiny.bin')
      writeFileSync(tinyPath, Buffer.from([1, 2, 3, 4]))
      low.cli('send', 'join', 'chat', '{"name":"d-tiny"}', '--app', APP, '--file', tinyPath)
      const bigData = Buffer.alloc(3 * 1024 * 1024)
      for (let i = 0; i < bigData.length; i++) bigData[i] = (i * 13) & 255
      const bigPath = join(tmp, 'big.bin')
      writeFileSync(bigPath, bigData)
      high.cli('send', 'join', 'chat', '{"name":"d-big"}', '--app', APP, '--file', bigPath)
      await pageMsg(page1, m => m.data === 'hello page' && m.from === low.peerId, 'text at page')
      await pageMsg(page1, m => m.data?.from === 'daemon' && m.data.n === 2, 'json at page')
      const tiny = await pageMsg(page1, m => m.meta?.name === 'd-tiny', 'binary at page')
      assert.deepEqual(tiny.data, {bytes: 4, sum: checksum([1, 2, 3, 4])})
      assert.ok(tiny.binary)
      const big = await pageMsg(page1, m => m.meta?.name === 'd-big', '3 MiB at page', 20000)
      assert.deepEqual(big.data, {bytes: bigData.length, sum: checksum(bigData)})
      const progress = (await T(page1)).progress.filter(p => p.from === high.peerId)
      assert.ok(progress.length > 50, `page reported progress ${progress.length} times`)
    },

    "a page's messages are kept by a daemon and replayed flagged unverified": async () => {
      const room = `kept-${Date.now()}`
      const keeper = low.listen(room, {app: APP, keep: ['chat=100']})
      const page = await openPage()
      await pageJoin(page, relay, room)
      await keeper.wait('page joins the keeper', isJoin(page.peerId))
      await until('keeper joined at the page', async () => (await T(page)).joins.includes(low.peerId))
      await page.evaluate(() => window.send('kept from a page'))
      const live = await keeper.wait('live', m => m.event === 'message' && m.data === 'kept from a page')
      assert.ok(live.cursor > 0 && !live.history, JSON.stringify(live))
      // A second app on the daemon resumes from the start: the page's message, unverified
      // (a Trystero page cannot sign).
      const resumed = low.listen(room, {app: APP, keep: ['chat=100'], since: 'all'})
      const replayed = await resumed.wait('replayed', m => m.event === 'message' && m.data === 'kept from a page')
      assert.equal(replayed.history, true)
      assert.equal(replayed.verified, false)
      assert.equal(replayed.from, page.peerId)
      assert.equal(replayed.cursor, live.cursor)
      await resumed.stop()
      await keeper.stop()
      await page.close()
    },

    'targeted sends and ping both ways': async () => {
      const {low: ll, high: hl} = page1.listeners
      await page1.evaluate(to => window.send('only for low', [to]), low.peerId)
      await page1.evaluate(() => window.send('for everyone'))
      await ll.wait('targeted at low', m => m.data === 'only for low')
      await hl.wait('broadcast at high', m => m.data === 'for everyone')
      assert.ok(!hl.find(m => m.data === 'only for low'), 'targeted send leaked to high')
      high.cli('send', 'join', 'chat', 'dm to page', '--app', APP, '--to', page1.peerId)
      await pageMsg(page1, m => m.data === 'dm to page' && m.from === high.peerId, 'targeted at page')
      const rtt = await page1.evaluate(id => window.R.ping(id), low.peerId)
      assert.ok(rtt >= 0 && rtt < 5000, `page ping ${rtt}`)
      const ms = parseFloat(low.cli('ping', 'join', page1.peerId, '--app', APP))
      assert.ok(ms >= 0 && ms < 5000, `daemon ping ${ms}`)
      console.log(`# ping page->daemon ${rtt.toFixed(2)} ms, daemon->page ${ms.toFixed(2)} ms`)
    },

    'request actions both ways: page to daemon app (CLI --respond), daemon app (CLI request) to page, rejections and timeouts': async () => {
      const room = 'rpc'
      // The daemon app's handler: a shell command; "fail" makes it exit non-zero with a message.
      const respond = 'read q; if [ "$q" = fail ]; then echo "refused: $q" >&2; exit 3; fi; printf "re:%s from %s meta %s" "$q" "$MESHRTC_PEER" "$MESHRTC_META"'
      const ll = low.listen(room, {app: APP, serve: ['ask'], respond})
      const hl = high.listen(room, {app: APP})
      await sleep(300)
      const page = await openPage()
      await page.evaluate(
        ({relay, room, app}) => {
          const T = (window.T = {joins: [], msgs: [], progress: []})
          const r = (window.R = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, room))
          r.onPeerJoin = id => T.joins.push(id)
          window.ASK = r.makeAction('ask', {kind: 'request'})
          r.makeAction('calc', {
            kind: 'request',
            onRequest: (data, {peerId, metadata}) => {
              if (data === 'boom') throw new Error('calc cannot do boom')
              return {sum: data.a + data.b, from: peerId, metadata: metadata ?? null}
            }
          })
          // A plain message action: a request on it is never answered.
          r.makeAction('quiet').onMessage = () => {}
          window.outcome = p => p.then(value => ({value}), e => ({kind: e.kind, message: e.message}))
        },
        {relay, room, app: APP}
      )
      await until('page sees both daemons', async () => {
        const t = await T(page)
        return t.joins.includes(low.peerId) && t.joins.includes(high.peerId)
      })
      await ll.wait('low sees page', isJoin(page.peerId))
      await hl.wait('high sees page', isJoin(page.peerId))

      // Page -> daemon app: the reply resolves the page's promise.
      const ok = await page.evaluate(to => window.outcome(window.ASK.request('q1', {target: to, timeoutMs: 10000, metadata: {n: 1}})), low.peerId)
      assert.deepEqual(ok, {value: `re:q1 from ${page.peerId} meta {"n":1}`})
      const req = await ll.wait('request line', l => l.event === 'request' && l.data === 'q1')
      assert.equal(req.from, page.peerId)
      assert.deepEqual(req.meta, {n: 1})
      assert.ok(!ll.find(l => l.event === 'message' && l.channel === 'ask'), 'a request surfaced as a message')
      // A failing handler is a rejection with its message.
      const bad = await page.evaluate(to => window.outcome(window.ASK.request('fail', {target: to, timeoutMs: 10000})), low.peerId)
      assert.equal(bad.kind, 'rejected', JSON.stringify(bad))
      assert.match(bad.message, /refused: fail/)
      // requestMany: one answers, one (high serves nothing) times out.
      const many = await page.evaluate(
        tos => window.ASK.requestMany('q2', {targets: tos, timeoutMs: 2000}).then(rs => rs.map(r => ({peerId: r.peerId, status: r.status, value: r.value}))),
        [low.peerId, high.peerId]
      )
      assert.deepEqual(many.map(r => r.status), ['fulfilled', 'timeout'])
      assert.match(many[0].value, /^re:q2 from /)

      // Daemon app -> page: the page's onRequest answers the CLI.
      const out = high.cli('request', room, 'calc', '{"a":2,"b":3}', '--to', page.peerId, '--app', APP, '--timeout', '10', '--meta', '{"k":"v"}')
      assert.deepEqual(JSON.parse(out), {sum: 5, from: high.peerId, metadata: {k: 'v'}})
      const cliFails = args => {
        try {
          high.cli(...args)
        } catch (e) {
          return e.stderr.toString()
        }
        assert.fail(`meshrtc ${args.join(' ')} succeeded`)
      }
      const thrown = cliFails(['request', room, 'calc', 'boom', '--to', page.peerId, '--app', APP, '--timeout', '10'])
      assert.match(thrown, /rejected the request: calc cannot do boom/)
      const t0 = Date.now()
      const quiet = cliFails(['request', room, 'quiet', 'hello?', '--to', page.peerId, '--app', APP, '--timeout', '2'])
      assert.match(quiet, /did not answer within 2 s/)
      assert.ok(Date.now() - t0 < 8000, 'the timeout took too long')
      // --json: one line per peer with its status.
      const lines = high.cli('request', room, 'calc', '{"a":1,"b":1}', '--to', page.peerId, '--app', APP, '--timeout', '10', '--json').trim().split('\n').map(l => JSON.parse(l))
      assert.deepEqual(lines.map(l => [l.peer, l.status, l.data?.sum]), [[page.peerId, 'fulfilled', 2]])
      await ll.stop()
      await hl.stop()
      await page.close()
    },

    'leave both ways, and a reload is leave + join': async () => {
      const {low: ll, high: hl} = page1.listeners
      let t = Date.now()
      // Well under 2 s on an idle machine (printed); the bounds here only catch a missing leave.
      await hl.stop()
      await until('page sees high leave', async () => (await T(page1)).leaves.includes(high.peerId), 10000)
      console.log(`# daemon leave seen by the page after ${Date.now() - t} ms`)
      const oldId = page1.peerId
      t = Date.now()
      await page1.reload()
      await ll.wait('low sees the page leave on reload', isLeave(oldId), 5000)
      console.log(`# page reload seen as leave after ${Date.now() - t} ms`)
      await until('trystero loaded', () => page1.evaluate(() => Boolean(window.trysteroReady)))
      const newId = await page1.evaluate(() => window.trysteroReady.selfId)
      assert.notEqual(newId, oldId)
      await pageJoin(page1, relay, 'join')
      await ll.wait('low sees the reloaded page join', isJoin(newId))
      t = Date.now()
      await page1.evaluate(() => window.R.leave())
      await ll.wait('low sees the page leave', isLeave(newId), 10000)
      console.log(`# page leave seen by the daemon after ${Date.now() - t} ms`)
      await ll.stop()
    },

    'password rooms: same password joins, wrong password never does and the app is told': async () => {
      // The page must offer to the wrong-password daemon (smaller id offers): the daemon then
      // holds an offer it cannot decrypt, which is how it knows the password differs.
      let page = await openPage()
      while (page.peerId > high.peerId) {
        await page.close()
        page = await openPage()
      }
      const good = low.listen('secret', {app: APP, password: 'open sesame'})
      const bad = high.listen('secret', {app: APP, password: 'wrong'})
      await sleep(300)
      await pageJoin(page, relay, 'secret', 'open sesame')
      const joined = await good.wait('same password joins', isJoin(page.peerId)).catch(async e => {
        console.log(`# diagnostics: page ${page.peerId} low ${low.peerId} high ${high.peerId}`)
        console.log(`# page T: ${JSON.stringify(await T(page))}`)
        console.log(`# page connections: ${JSON.stringify(await page.evaluate(() => window.PC_TRACE))}`)
        console.log(`# low status: ${JSON.stringify(await low.status())}`)
        console.log(`# low listen: ${JSON.stringify(good.lines)}`)
        console.log(low.log.split('\n').slice(-40).join('\n'))
        throw e
      })
      assert.equal(joined.security, 'transport', 'a Trystero page is protected by DTLS only')
      await until('page joins low', async () => (await T(page)).joins.includes(low.peerId))
      await page.evaluate(() => window.send('secret hello'))
      await good.wait('message in password room', m => m.data === 'secret hello')
      const err = await bad.wait('wrong password reported', m => m.event === 'error' && m.code === 'password_mismatch', 20000)
      assert.ok(err.message.includes('password'))
      await sleep(1000)
      await assertListening(high, bad, 'secret', 'wrong')
      assert.ok(!bad.find(isJoin(page.peerId)), 'wrong password joined')
      assert.ok(!(await T(page)).joins.includes(high.peerId), 'page joined the wrong-password daemon')
      await good.stop()
      await bad.stop()
      await page.close()
    },

    'require_e2e refuses a plain Trystero page and says why': async () => {
      const page = await openPage()
      const strict = low.listen('strict', {app: APP, password: 'open sesame', requireE2e: true})
      await sleep(300)
      await pageJoin(page, relay, 'strict', 'open sesame')
      const err = await strict.wait('refusal reported', m => m.event === 'error' && m.code === 'e2e_required', 20000)
      assert.equal(err.peer, page.peerId)
      await sleep(500)
      await assertListening(low, strict, 'strict', 'open sesame')
      assert.ok(!strict.find(isJoin(page.peerId)), 'the page joined a require_e2e room')
      assert.ok((await low.status()).drops.e2e_required > 0)
      await strict.stop()
      await page.close()
    },

    'two pages and two daemons form a full mesh': async () => {
      // The page-to-page link is Trystero's own (no daemon in it) and in headless Chromium it
      // occasionally never forms. One fresh attempt (new room, new pages) is allowed for that
      // alone: only when every daemon-side check passed and only that link is missing. Anything
      // else (a daemon not seeing a page, a page not seeing a daemon, a lost message) fails.
      class PageLinkMissing extends Error {}
      const attempt = async room => {
        const ll = low.listen(room, {app: APP})
        const hl = high.listen(room, {app: APP})
        const pages = []
        try {
          const p1 = await openPage()
          pages.push(p1)
          const p2 = await openPage()
          pages.push(p2)
          await pageJoin(p1, relay, room)
          await until('first page joined the daemons', async () => (await T(p1)).joins.length >= 2, 30000)
          await pageJoin(p2, relay, room)
          const daemonIds = [low.peerId, high.peerId]
          for (const l of [ll, hl]) {
            await l.wait('daemon sees page 1', isJoin(p1.peerId), 30000)
            await l.wait('daemon sees page 2', isJoin(p2.peerId), 30000)
          }
          await ll.wait('low sees high', isJoin(high.peerId), 30000)
          for (const p of [p1, p2]) {
            await until(`page ${p.peerId} joined both daemons`, async () => {
              const t = await T(p)
              return daemonIds.every(id => t.joins.includes(id))
            }, 30000)
          }
          // Every daemon-side link is up. Now Trystero's own page-to-page link.
          const pageLink = async () => (await T(p1)).joins.includes(p2.peerId) && (await T(p2)).joins.includes(p1.peerId)
          try {
            await until('the pages joined each other', pageLink, 25000)
          } catch {
            throw new PageLinkMissing(`Trystero's page-to-page link ${p1.peerId} <-> ${p2.peerId} did not form; every daemon link did`)
          }
          console.log('# mesh: all joined; sending')
          await p1.evaluate(() => window.send('from p1'))
          await p2.evaluate(() => window.send('from p2'))
          low.cli('send', room, 'chat', 'from low', '--app', APP)
          high.cli('send', room, 'chat', 'from high', '--app', APP)
          const missing = async () => {
            const out = []
            for (const [name, p] of [['p1', p1], ['p2', p2]]) out.push(`${name} got ${JSON.stringify((await T(p)).msgs.map(m => `${m.data} (${m.from})`))}`)
            for (const [name, l] of [['low', ll], ['high', hl]]) out.push(`${name} got ${JSON.stringify(l.lines.filter(m => m.event === 'message').map(m => `${m.data} (${m.from})`))}`)
            for (const [name, d] of [['low', low], ['high', high]]) out.push(`${name} drops ${JSON.stringify((await d.status()).drops)}`)
            return out.join('; ')
          }
          try {
            for (const [who, text] of [[p1, 'from p2'], [p1, 'from low'], [p1, 'from high'], [p2, 'from p1'], [p2, 'from low'], [p2, 'from high']]) {
              await pageMsg(who, m => m.data === text, `${text} at a page`, 15000)
            }
            for (const [l, texts] of [[ll, ['from p1', 'from p2', 'from high']], [hl, ['from p1', 'from p2', 'from low']]]) {
              for (const text of texts) await l.wait(`${text} at a daemon`, m => m.data === text, 15000)
            }
          } catch (e) {
            console.log(`# mesh: ${await missing().catch(() => '')}`)
            throw e
          }
        } finally {
          await ll.stop()
          await hl.stop()
          for (const p of pages) await p.close()
        }
      }
      try {
        await attempt('mesh')
      } catch (e) {
        if (!(e instanceof PageLinkMissing)) throw e
        console.log(`# mesh: RETRY: ${e.message}; one fresh attempt in a new room`)
        await attempt('mesh-again')
      }
    }
  },
  async () => {
    await browser.close()
    server.close()
    for (const d of daemons) await d.destroy()
  },
  async () => {
    // Each open page's links and how far each chunked message had come (its last progress).
    for (const page of openPages) {
      const links = await page.evaluate(() => window.linkReport()).catch(e => [`(no report: ${e.message})`])
      const progress = {}
      for (const p of (await T(page).catch(() => null))?.progress ?? []) progress[p.from] = p.fraction
      console.log(`# page ${page.peerId} links:\n# ${links.join('\n# ')}`)
      console.log(`# page ${page.peerId} last receive progress by sender: ${JSON.stringify(progress)}`)
    }
    for (const d of daemons) {
      const lines = d.log.split('\n').filter(l => /meshrtc::node|WARN|ERROR/.test(l)).slice(-25)
      console.log(`# log of daemon ${d.peerId}:\n# ${lines.join('\n# ')}`)
    }
  }
)

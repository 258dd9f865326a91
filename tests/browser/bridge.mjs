// Browser bridge tests: pages use meshrtcd through its WebSocket bridge, in headless Chromium.
import {createServer, request} from 'node:http'
import {execFileSync} from 'node:child_process'
import {mkdirSync} from 'node:fs'
import assert from 'node:assert/strict'
import {Daemon, launchBrowser, runTests, until, freePort, MESHRTC} from './lib.mjs'

// A second origin whose pages a may serve (but not tell about the whole node).
const allowedPort = await freePort()
const a = await Daemon.withEmbeddedRelay(['--ws-allow-origin', `http://127.0.0.1:${allowedPort}`])
const b = await Daemon.withRelays([a.relayUrl])
const browser = await launchBrowser()
const context = await browser.newContext()

/** A page of a daemon with a room joined through the JS client; events are recorded in window.t. */
const openClient = async (daemon, app, room, opts = {}) => {
  const page = await context.newPage()
  await page.goto(`${daemon.origin}/meshrtc.d.ts`)
  await page.evaluate(
    async ({app, room, password}) => {
      const {connect} = await import('/meshrtc.js')
      const t = (window.t = {msgs: [], progress: [], joins: [], leaves: [], states: []})
      const node = (window.tnode = await connect({url: `ws://${location.host}/ws`}))
      node.on('node', s => t.states.push(s))
      const r = (window.troom = await node.joinRoom(app, room, {password}))
      r.on('peer:join', p => t.joins.push(p))
      r.on('peer:leave', p => t.leaves.push(p))
      for (const name of ['chat', 'file']) {
        r.channel(name).on('message', (data, from, meta) => {
          const binary = data instanceof Uint8Array
          let sum = 0
          if (binary) for (let i = 0; i < data.length; i++) sum = (sum * 31 + data[i]) >>> 0
          t.msgs.push({channel: name, from, meta, data: binary ? {bytes: data.length, sum} : data})
        })
        r.channel(name).on('progress', (fraction, from) => t.progress.push({channel: name, fraction, from}))
      }
    },
    {app, room, password: opts.password ?? ''}
  )
  return page
}

const state = page => page.evaluate(() => ({...window.t, peers: Object.keys(window.troom.getPeers()), selfId: window.tnode.selfId}))
const send = (page, channel, data, targets, meta) =>
  page.evaluate(({channel, data, targets, meta}) => window.troom.channel(channel).send(data, targets, meta), {channel, data, targets, meta})
const waitMsg = (page, pred, what) => until(what, async () => (await state(page)).msgs.find(pred))

await runTests(
  {
    'two daemons, a demo page on each, chat both ways (screenshot)': async () => {
      const room = `demo-${Date.now()}`
      const pa = await context.newPage()
      const pb = await context.newPage()
      for (const [p, d] of [[pa, a], [pb, b]]) {
        await p.setViewportSize({width: 1360, height: 720})
        await p.goto(`${d.origin}/`)
        await until('node open', () => p.evaluate(() => window.meshNode?.state === 'open'))
        await p.fill('#room', room)
        await p.click('#join')
      }
      await until('peer lists', async () => (await pa.locator('#peers li').count()) === 1 && (await pb.locator('#peers li').count()) === 1)
      await pa.fill('#msg', 'hello from the first machine')
      await pa.click('#send')
      await until('message at b', async () => (await pb.locator('#log').innerText()).includes('hello from the first machine'))
      await pb.fill('#msg', 'and hello back from the second')
      await pb.click('#send')
      await until('message at a', async () => (await pa.locator('#log').innerText()).includes('and hello back from the second'))
      await until('latency shown', async () => (await pa.locator('#peers li').innerText()).includes(' ms'), 10000)
      mkdirSync('target/browser', {recursive: true})
      await pa.screenshot({path: process.env.SCREENSHOT ?? 'target/browser/demo.png'})
      await pa.close()
      await pb.close()
    },

    'the page at / shows the node live: relays, rooms and their peers, drops (screenshot)': async () => {
      const room = `status-${Date.now()}`
      const pa = await context.newPage()
      await pa.setViewportSize({width: 1360, height: 760})
      // Without the token the page says how to get the panel, and shows nothing of the node.
      await pa.goto(`${a.origin}/`)
      await until('the token hint', async () => (await pa.locator('#nNote').innerText()).includes('meshrtc token'))
      assert.ok(!(await pa.locator('#nRelays').innerText()).includes('connected'))
      const token = execFileSync(MESHRTC, ['--daemon', a.daemon, 'token']).toString().trim()
      await pa.goto('about:blank') // a fragment change alone would not load the page again
      await pa.goto(`${a.origin}/#token=${token}`)
      await until('the token left the address bar', () => pa.evaluate(() => location.hash === ''))
      await pa.evaluate(() => (window.notReloaded = true))
      const panel = () => pa.locator('#node').innerText()
      await until('own peer id and a connected relay', async () => {
        const text = await panel()
        return text.includes(a.peerId) && /connected/.test(await pa.locator('#nRelays').innerText())
      })
      await pa.fill('#app', 'bridge-test')
      await pa.fill('#room', room)
      await pa.click('#join')
      const pb = await openClient(b, 'bridge-test', room)
      await until('the room and its remote peer with RTT, security and link type', async () => {
        const rooms = await pa.locator('#nRooms').innerText()
        return rooms.includes(`bridge-test / ${room}`) && rooms.includes(b.peerId) && / ms/.test(rooms) && rooms.includes('transport') && /host\/udp/.test(rooms)
      }, 30000)
      // A script without the token is refused and counted: the panel shows it without a reload.
      await new Promise(resolve => {
        const req = request({host: '127.0.0.1', port: a.wsPort, path: '/ws', headers: {Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='}})
        req.on('response', resolve)
        req.on('upgrade', resolve)
        req.on('error', resolve)
        req.end()
      })
      await until('the refusal in the drops table', async () => /ws_token_refused/.test(await pa.locator('#nDrops').innerText()))
      mkdirSync('target/browser', {recursive: true})
      await pa.screenshot({path: process.env.STATUS_SCREENSHOT ?? 'target/browser/status.png'})
      await pb.close()
      await until('the remote peer gone from the panel', async () => !(await pa.locator('#nRooms').innerText()).includes(b.peerId), 30000)
      assert.ok(await pa.evaluate(() => window.notReloaded === true), 'the page reloaded')
      await pa.close()
    },

    'a page of another allowed origin may use rooms but not read the whole node': async () => {
      const server = createServer((_, res) => res.end('<!doctype html><title>allowed</title>'))
      await new Promise(r => server.listen(allowedPort, '127.0.0.1', r))
      const page = await context.newPage()
      await page.goto(`http://127.0.0.1:${allowedPort}/`)
      const replies = await page.evaluate(
        wsUrl =>
          new Promise(resolve => {
            const out = {}
            const ws = new WebSocket(wsUrl)
            ws.onmessage = e => {
              const m = JSON.parse(e.data)
              if (m.reply) out[m.reply.requestId] = m.reply
              if (Object.keys(out).length === 3) resolve(out)
            }
            ws.onopen = () => {
              ws.send(JSON.stringify({requestId: '1', status: {}}))
              ws.send(JSON.stringify({requestId: '2', nodePeers: {app: 'bridge-test', room: 'any'}}))
              ws.send(JSON.stringify({requestId: '3', join: {app: 'bridge-test', room: `allowed-${Date.now()}`}}))
            }
            setTimeout(() => resolve(out), 5000)
          }),
        `ws://127.0.0.1:${a.wsPort}/ws`
      )
      assert.equal(replies['1']?.error?.code, 'forbidden', JSON.stringify(replies))
      assert.equal(replies['1']?.status, undefined)
      assert.equal(replies['2']?.error?.code, 'forbidden')
      assert.ok(replies['3'] && !replies['3'].error && replies['3'].room, 'the allowed page could not join')
      await page.close()
      server.close()
    },

    'two tabs on one daemon receive a remote message and each other': async () => {
      const room = `tabs-${Date.now()}`
      const t1 = await openClient(a, 'bridge-test', room)
      const t2 = await openClient(a, 'bridge-test', room)
      const r = await openClient(b, 'bridge-test', room)
      await until('tabs see remote', async () => (await state(t1)).peers.includes(b.peerId) && (await state(t2)).peers.includes(b.peerId))
      await send(r, 'chat', {from: 'remote', n: 1})
      for (const t of [t1, t2]) {
        const m = await waitMsg(t, m => m.data?.from === 'remote', 'remote message in each tab')
        assert.equal(m.from, b.peerId)
      }
      await send(t1, 'chat', 'tab one speaking')
      const local = await waitMsg(t2, m => m.data === 'tab one speaking', 'local message in tab two')
      assert.equal(local.from, a.peerId)
      const remote = await waitMsg(r, m => m.data === 'tab one speaking', 'tab message at remote')
      assert.equal(remote.from, a.peerId)
      for (const p of [t1, t2, r]) await p.close()
    },

    'request actions between pages of two daemons: reply, rejection, timeout, requestMany, stop serving': async () => {
      const room = `ask-${Date.now()}`
      const asker = await openClient(a, 'bridge-test', room)
      const server = await openClient(b, 'bridge-test', room)
      await until('joined', async () => (await state(asker)).peers.includes(b.peerId))
      await server.evaluate(async () => {
        const calc = window.troom.channel('calc')
        calc.on('message', (data, from) => window.t.msgs.push({channel: 'calc', from, data}))
        await calc.serve(async ({a, b}, from, meta) => {
          if (a === 'boom') throw new Error(`calc cannot do ${a}`)
          if (a === 'never') return new Promise(() => {})
          return {sum: a + b, from, meta}
        })
      })
      const ask = (data, opts) =>
        asker.evaluate(
          ({data, opts}) =>
            window.troom.channel('calc').request(data, opts).then(
              value => ({value}),
              err => ({code: err.code, message: err.message, peerId: err.peerId})
            ),
          {data, opts}
        )
      const ok = await ask({a: 2, b: 3}, {target: b.peerId, timeoutMs: 10000, meta: {n: 1}})
      assert.deepEqual(ok, {value: {sum: 5, from: a.peerId, meta: {n: 1}}})
      const bad = await ask({a: 'boom', b: 0}, {target: b.peerId, timeoutMs: 10000})
      assert.deepEqual(bad, {code: 'rejected', message: 'calc cannot do boom', peerId: b.peerId})
      const slow = await ask({a: 'never', b: 0}, {target: b.peerId, timeoutMs: 1500})
      assert.equal(slow.code, 'timeout')
      const many = await asker.evaluate(
        to => window.troom.channel('calc').requestMany({a: 1, b: 1}, {targets: [to, 'nobody-here', to], timeoutMs: 10000}),
        b.peerId
      )
      assert.deepEqual(
        many.map(o => [o.peerId, o.status, o.value?.sum]),
        [[b.peerId, 'fulfilled', 2], ['nobody-here', 'disconnected', undefined]]
      )
      // A request is never surfaced as a plain message.
      assert.ok(!(await state(server)).msgs.some(m => m.channel === 'calc'), 'a request arrived as a message')
      await server.evaluate(() => window.troom.channel('calc').serve(null))
      // Unserved, the channel is a plain one again (as a Trystero page's plain action): the
      // request arrives as a message and goes unanswered.
      const unserved = await ask({a: 7, b: 1}, {target: b.peerId, timeoutMs: 1500})
      assert.equal(unserved.code, 'timeout')
      await waitMsg(server, m => m.channel === 'calc' && m.data?.a === 7, 'the unserved request as a message')
      await asker.close()
      await server.close()
    },

    '2 MiB binary arrives intact with progress': async () => {
      const room = `big-${Date.now()}`
      const rx = await openClient(a, 'bridge-test', room)
      const tx = await openClient(b, 'bridge-test', room)
      await until('joined', async () => (await state(tx)).peers.includes(a.peerId))
      const expected = await tx.evaluate(async () => {
        const data = new Uint8Array(2 * 1024 * 1024)
        for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 13
        let sum = 0
        for (let i = 0; i < data.length; i++) sum = (sum * 31 + data[i]) >>> 0
        await window.troom.channel('file').send(data, null, {name: 'blob.bin'})
        return {bytes: data.length, sum}
      })
      const m = await waitMsg(rx, m => m.channel === 'file', '2 MiB file', 60000)
      assert.deepEqual(m.data, expected)
      assert.deepEqual(m.meta, {name: 'blob.bin'})
      const s = await state(rx)
      const progress = s.progress.filter(p => p.channel === 'file')
      // A reader that falls behind gets the latest progress of a message, not every chunk's.
      assert.ok(progress.length >= 2, `progress reported ${progress.length} times`)
      assert.ok(progress.every((p, i) => i === 0 || p.fraction >= progress[i - 1].fraction), 'progress is monotonic')
      await rx.close()
      await tx.close()
    },

    'daemon restart: the page reconnects, rejoins and chats again': async () => {
      const room = `restart-${Date.now()}`
      const pa = await openClient(a, 'bridge-test', room)
      const pb = await openClient(b, 'bridge-test', room)
      await until('joined', async () => (await state(pb)).peers.includes(a.peerId))
      await b.stop('SIGTERM')
      await until('page notices', async () => (await state(pb)).states.includes('reconnecting'))
      await b.start()
      await until('page reconnected', async () => (await state(pb)).states.at(-1) === 'open', 30000)
      await until('rejoined', async () => (await state(pb)).peers.includes(a.peerId), 30000)
      await send(pb, 'chat', 'after restart')
      await waitMsg(pa, m => m.data === 'after restart', 'message after restart')
      await send(pa, 'chat', 'welcome back')
      await waitMsg(pb, m => m.data === 'welcome back', 'reply after restart')
      await pa.close()
      await pb.close()
    },

    'scripts need the token; malformed requests get clear errors': async () => {
      const upgrade = path =>
        new Promise((resolve, reject) => {
          const req = request({host: '127.0.0.1', port: a.wsPort, path, headers: {Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='}})
          req.on('upgrade', res => {
            res.socket.destroy()
            resolve(res.statusCode)
          })
          req.on('response', res => resolve(res.statusCode))
          req.on('error', reject)
          req.end()
        })
      assert.equal(await upgrade('/ws'), 401)
      assert.equal(await upgrade('/ws?token=wrong'), 401)
      const token = execFileSync(MESHRTC, ['--daemon', a.daemon, 'token']).toString().trim()
      assert.equal(token.length, 64)
      assert.equal(await upgrade(`/ws?token=${token}`), 101)
      const page = await context.newPage()
      await page.goto(`${a.origin}/meshrtc.d.ts`)
      const replies = await page.evaluate(
        () =>
          new Promise(resolve => {
            const out = []
            const ws = new WebSocket(`ws://${location.host}/ws`)
            ws.onmessage = e => {
              out.push(JSON.parse(e.data))
              if (out.length === 4) resolve(out)
            }
            ws.onopen = () => {
              ws.send('not json')
              ws.send(JSON.stringify({requestId: '7', bogus: {}}))
              ws.send(JSON.stringify({requestId: '8', send: {room: 99, channel: 'chat', payload: {text: 'x'}}}))
            }
            setTimeout(() => resolve(out), 5000)
          })
      )
      assert.ok(replies[0].hello?.selfId, 'first message is hello')
      const codes = replies.slice(1).map(r => r.reply?.error?.code)
      assert.deepEqual(codes, ['invalid_request', 'invalid_request', 'not_found'])
      await page.close()
    },

    'a page from a refused origin can neither join nor send': async () => {
      const port = await freePort()
      const server = createServer((_, res) => res.end('<!doctype html><title>hostile</title>'))
      await new Promise(r => server.listen(port, '127.0.0.1', r))
      const before = (await a.status()).drops.ws_origin_refused ?? 0
      const page = await context.newPage()
      await page.goto(`http://127.0.0.1:${port}/`)
      const result = await page.evaluate(async wsUrl => {
        const out = {clientError: null, raw: []}
        try {
          const src = await (await fetch(wsUrl.replace('ws://', 'http://').replace('/ws', '/meshrtc.js'))).text().catch(() => null)
          out.fetched = src !== null
        } catch {
          out.fetched = false
        }
        // A hand-written attempt: open the socket, try to join and send.
        await new Promise(resolve => {
          const ws = new WebSocket(wsUrl)
          ws.onopen = () => {
            out.raw.push('open')
            ws.send(JSON.stringify({requestId: '1', join: {app: 'bridge-test', room: 'hostile'}}))
            ws.send(JSON.stringify({requestId: '2', send: {room: 1, channel: 'chat', payload: {text: 'pwned'}}}))
          }
          ws.onmessage = e => out.raw.push(e.data)
          ws.onerror = () => out.raw.push('error')
          ws.onclose = () => resolve()
          setTimeout(resolve, 3000)
        })
        return out
      }, `ws://127.0.0.1:${a.wsPort}/ws`)
      assert.ok(!result.raw.includes('open'), `socket opened: ${JSON.stringify(result)}`)
      assert.ok(result.raw.includes('error'))
      assert.ok(!result.raw.some(m => m.includes('hello') || m.includes('reply')), 'the daemon answered a refused page')
      const after = (await a.status()).drops.ws_origin_refused ?? 0
      assert.ok(after > before, 'the refusal was not counted')
      assert.ok(!(await a.status()).rooms.some(r => r.room === 'hostile'), 'the refused page joined a room')
      await page.close()
      server.close()
    },
    'GenosRTC parity: peer types, an explicit goodbye, the cells view': async () => {
      const room = `parity-${Date.now()}`
      const openPage = async (daemon, keep) => {
        const page = await context.newPage()
        await page.goto(`${daemon.origin}/meshrtc.d.ts`)
        await page.evaluate(
          async ({room, keep}) => {
            const {connect} = await import('/meshrtc.js')
            const t = (window.t = {joins: [], seen: [], leaves: [], lost: [], meshStates: [], meshPeers: []})
            const node = await connect({url: `ws://${location.host}/ws`})
            const r = (window.troom = await node.joinRoom('bridge-test', room, {cells: true, ...(keep ? {keep} : {})}))
            r.on('peer:join', (p, type) => t.joins.push([p, type]))
            r.on('peer:seen', (p, type) => t.seen.push([p, type ?? null]))
            r.on('peer:leave', p => t.leaves.push(p))
            r.on('peer:lost', p => t.lost.push(p))
            r.on('mesh:state', s => t.meshStates.push(s))
            r.on('mesh:peer-state', (p, s) => t.meshPeers.push([p, s]))
          },
          {room, keep}
        )
        return page
      }
      const pb = await openPage(b)
      const pa = await openPage(a, {chat: 100})
      const t = () => pb.evaluate(() => window.t)
      await until('a joins b as a member', async () => (await t()).joins.some(([p, type]) => p === a.peerId && type === 'member'))
      await until('a is then sighted as a keeper', async () => (await t()).seen.some(([p, type]) => p === a.peerId && type === 'keeper'))
      await until('the link to a is in the cells view', async () =>
        (await t()).meshPeers.some(([p, s]) => p === a.peerId && s.linked && !s.bridge)
      )
      const view = await until('mesh state', () => pb.evaluate(() => window.troom.mesh.getState()))
      assert.ok(view.members >= 1 && view.cellCount >= 1, JSON.stringify(view))
      assert.deepEqual(view.peers[a.peerId], {linked: true, cell: view.cell, bridge: false})
      assert.ok((await t()).meshStates.length >= 1, 'no mesh:state event')
      // An explicit leave is a goodbye: peer:leave, then peer:lost.
      await pa.evaluate(() => window.troom.leave())
      await until('goodbye seen', async () => (await t()).lost.includes(a.peerId))
      const after = await t()
      assert.ok(after.leaves.includes(a.peerId))
      assert.ok(after.meshPeers.some(([p, s]) => p === a.peerId && !s.linked), 'no unlinked mesh:peer-state')
      assert.equal((await pb.evaluate(() => window.troom.mesh.getState())).peers[a.peerId], undefined)
      await pa.close()
      await pb.close()
    },

    'a page keeping a channel resumes from its last cursor after it was closed': async () => {
      const room = `keep-${Date.now()}`
      const openKeeper = async since => {
        const page = await context.newPage()
        await page.goto(`${a.origin}/meshrtc.d.ts`)
        await page.evaluate(
          async ({room, since}) => {
            const {connect} = await import('/meshrtc.js')
            const t = (window.t = {msgs: [], joins: []})
            const node = await connect({url: `ws://${location.host}/ws`})
            const r = (window.troom = await node.joinRoom('bridge-test', room, {keep: {chat: [100, '1h']}, ...(since ? {since} : {})}))
            r.on('peer:join', p => t.joins.push(p))
            r.channel('chat').on('message', (data, from, meta, info) => t.msgs.push({data, ...info}))
          },
          {room, since}
        )
        return page
      }
      const first = await openKeeper()
      const other = await openClient(b, 'bridge-test', room)
      await until('joined', async () => (await state(other)).peers.length === 1)
      await send(other, 'chat', 'k0')
      await send(other, 'chat', 'k1')
      const seen = await until('live kept messages', async () => {
        const msgs = await first.evaluate(() => window.t.msgs)
        return msgs.length === 2 ? msgs : null
      })
      assert.ok(seen.every(m => m.cursor > 0 && !m.history), JSON.stringify(seen))
      const last = seen[1].cursor
      await first.close()
      // The page is gone, the daemon still holds the room and keeps what arrives.
      await send(other, 'chat', 'k2')
      await send(other, 'chat', 'k3')
      await until('kept while away', async () => {
        const h = JSON.parse(execFileSync(MESHRTC, ['--daemon', a.daemon, 'history', room, '--app', 'bridge-test', '--json']).toString())
        return h.messages === 4
      })
      const again = await openKeeper(last)
      const replayed = await until('replay', async () => {
        const msgs = await again.evaluate(() => window.t.msgs)
        return msgs.length === 2 ? msgs : null
      })
      assert.deepEqual(replayed.map(m => [m.data, m.history]), [['k2', true], ['k3', true]])
      assert.ok(replayed[0].cursor > last)
      await again.close()
      await other.close()
    }
  },
  async () => {
    await browser.close()
    await a.destroy()
    await b.destroy()
  }
)

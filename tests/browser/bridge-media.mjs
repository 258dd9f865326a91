// Media between pages through their daemons' bridges (the JS client's addStream / replaceTrack /
// removeTrack): each page's camera goes over its loopback leg to its daemon, across the room's
// link to the other daemon, and over that daemon's leg into the other page, while chat goes on.
import {mkdirSync} from 'node:fs'
import assert from 'node:assert/strict'
import {Daemon, launchBrowser, runTests, until, sleep} from './lib.mjs'

const a = await Daemon.withEmbeddedRelay()
const b = await Daemon.withRelays([a.relayUrl])
const browser = await launchBrowser(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'])
const context = await browser.newContext()

/** A page of a daemon in `room` through the JS client; media and chat land in window.t. */
const openClient = async (daemon, room) => {
  const page = await context.newPage()
  await page.goto(`${daemon.origin}/meshrtc.d.ts`)
  await page.evaluate(async room => {
    const {connect} = await import('/meshrtc.js')
    const t = (window.t = {streams: [], tracks: [], removed: [], msgs: [], joins: []})
    const node = (window.tnode = await connect({url: `ws://${location.host}/ws`}))
    const r = (window.troom = await node.joinRoom('bridge-media', room))
    r.on('peer:join', p => t.joins.push(p))
    r.on('stream:add', (stream, peer, meta) => {
      t.streams.push({peer, meta})
      const v = document.createElement('video')
      v.muted = true
      v.autoplay = true
      v.srcObject = stream
      document.body.append(v)
    })
    r.on('track:add', (track, stream, peer, meta) => t.tracks.push({peer, kind: track.kind, meta}))
    r.on('track:remove', (track, stream, peer) => t.removed.push({peer, kind: track.kind}))
    t.errors = []
    t.states = []
    r.on('error', e => t.errors.push(e))
    node.on('node', s => t.states.push(s))
    r.channel('chat').on('message', (data, from) => t.msgs.push({data, from}))
  }, room)
  return page
}

const t = page => page.evaluate(() => window.t)

/** Video frames the page decoded from its leg. */
const framesDecoded = page =>
  page.evaluate(async () => {
    let n = 0
    const stats = await window.tnode._leg.pc.getStats()
    stats.forEach(s => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0
    })
    return n
  })

/** The leg as the page sees it, for a failure's diagnosis. */
const legState = page =>
  page.evaluate(async () => {
    const pc = (window.tnode ?? window.meshNode)._leg?.pc
    if (!pc) return 'no leg'
    const out = {ice: pc.iceConnectionState, conn: pc.connectionState, sig: pc.signalingState, tr: pc.getTransceivers().map(t => [t.mid, t.direction, t.currentDirection, t.receiver.track?.readyState]), rtp: []}
    const stats = await pc.getStats()
    stats.forEach(s => {
      if (s.type === 'transport') out.transport = {rx: s.packetsReceived, tx: s.packetsSent, dtls: s.dtlsState}
      if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') out.rtp.push({type: s.type, mid: s.mid, kind: s.kind, packets: s.packetsReceived ?? s.packetsSent, frames: s.framesDecoded ?? s.framesEncoded, keys: s.keyFramesDecoded ?? s.keyFramesEncoded, pli: s.pliCount})
    })
    return out
  })

const camera = page =>
  page.evaluate(async () => {
    window.CAM = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240, frameRate: 25}})
    return window.CAM.getVideoTracks()[0].id
  })

await runTests(
  {
    async 'page to page through two daemons: streams both ways, replaced and removed, chat throughout'() {
      const room = `cams-${Date.now()}`
      const pa = await openClient(a, room)
      const pb = await openClient(b, room)
      await until('daemons joined', async () => (await t(pa)).joins.includes(b.peerId) && (await t(pb)).joins.includes(a.peerId), 30000)

      let chats = 0
      const chat = async () => {
        chats++
        await pa.evaluate(n => window.troom.channel('chat').send(`a${n}`), chats)
        await pb.evaluate(n => window.troom.channel('chat').send(`b${n}`), chats)
      }
      await chat()

      await camera(pa)
      await camera(pb)
      const t0 = Date.now()
      await Promise.all([
        pa.evaluate(() => window.troom.addStream(window.CAM, null, {who: 'a', label: 'camera'})),
        pb.evaluate(() => window.troom.addStream(window.CAM, null, {who: 'b'}))
      ])
      await chat()
      const atB = await until('stream:add at page b', async () => (await t(pb)).streams[0], 30000)
      const atA = await until('stream:add at page a', async () => (await t(pa)).streams[0], 30000)
      console.log(`# bridge media: both streams arrived ${Date.now() - t0} ms after addStream`)
      assert.deepEqual(atB, {peer: a.peerId, meta: {who: 'a', label: 'camera'}})
      assert.deepEqual(atA, {peer: b.peerId, meta: {who: 'b'}})
      const framesB = await until('page b plays a\'s camera', async () => ((await framesDecoded(pb)) >= 25 ? framesDecoded(pb) : null), 30000).catch(async e => {
        console.log('# leg a: ' + JSON.stringify(await legState(pa)))
        console.log('# leg b: ' + JSON.stringify(await legState(pb)))
        throw e
      })
      const framesA = await until('page a plays b\'s camera', async () => ((await framesDecoded(pa)) >= 25 ? framesDecoded(pa) : null), 30000)
      console.log(`# bridge media: page b decoded ${framesB}, page a ${framesA} frames`)
      await chat()

      // replaceTrack: another camera track in place, no renegotiation; b sees the new metadata.
      await pa.evaluate(async () => {
        window.CAM2 = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240, frameRate: 25}})
        await window.troom.replaceTrack(window.CAM.getVideoTracks()[0], window.CAM2.getVideoTracks()[0], {who: 'a', label: 'second camera'})
      })
      await until('track:add again at b with the new metadata', async () => (await t(pb)).tracks.find(x => x.meta?.label === 'second camera'), 20000)
      const before = await framesDecoded(pb)
      await until('frames keep coming after replaceTrack', async () => (await framesDecoded(pb)) >= before + 25, 20000)
      await chat()

      // removeTrack: b sees the track go.
      await pa.evaluate(() => window.troom.removeTrack(window.CAM2.getVideoTracks()[0]))
      await until('track:remove at b', async () => (await t(pb)).removed.find(x => x.peer === a.peerId), 20000)
      await chat()

      const want = Array.from({length: chats}, (_, i) => i + 1)
      await until('every chat message at b', async () => (await t(pb)).msgs.filter(m => m.from === a.peerId).length === chats, 20000)
      await until('every chat message at a', async () => (await t(pa)).msgs.filter(m => m.from === b.peerId).length === chats, 20000)
      const atBMsgs = (await t(pb)).msgs.filter(m => m.from === a.peerId).map(m => m.data)
      assert.deepEqual(atBMsgs, want.map(n => `a${n}`), 'chat in order and complete during media')
      // b's own stream still plays at a after a's track went.
      const stillA = await framesDecoded(pa)
      await sleep(1000)
      assert.ok((await framesDecoded(pa)) > stillA, 'b\'s camera stopped at a')
      await pa.close()
      await pb.close()
    },

    async 'the demo page: the camera button on one page shows a playing tile on the other (screenshot)'() {
      const room = `demo-cams-${Date.now()}`
      const pages = []
      for (const d of [a, b]) {
        const p = await context.newPage()
        await p.setViewportSize({width: 1000, height: 940})
        await p.goto(`${d.origin}/`)
        await until('node open', () => p.evaluate(() => window.meshNode?.state === 'open'))
        await p.fill('#room', room)
        await p.click('#join')
        pages.push(p)
      }
      const [pa, pb] = pages
      await until('peer lists', async () => (await pa.locator('#peers li').count()) === 1 && (await pb.locator('#peers li').count()) === 1, 30000)
      await pa.click('#camera')
      const playing = () =>
        pb.evaluate(() => {
          const v = document.querySelector('#videos figure video')
          return v && v.readyState >= 2 && v.currentTime > 0.5 ? {tracks: v.srcObject.getTracks().map(t => t.kind).sort(), caption: v.nextSibling.textContent} : null
        })
      const shown = await until('a playing remote tile on the other page', playing, 30000).catch(async e => {
        console.log('# leg a: ' + JSON.stringify(await legState(pa)))
        console.log('# leg b: ' + JSON.stringify(await legState(pb)))
        console.log('# tiles at b: ' + (await pb.locator('#videos figure').count()))
        throw e
      })
      assert.deepEqual(shown.tracks, ['audio', 'video'])
      assert.ok(shown.caption.endsWith('camera'), shown.caption)
      mkdirSync('target/browser', {recursive: true})
      await pb.screenshot({path: 'target/browser/demo-media.png'})
      await pa.click('#camera')
      await until('the tile goes when the camera stops', async () => (await pb.locator('#videos figure').count()) === 0, 20000)
      await pa.close()
      await pb.close()
    },

    async 'a page\'s camera comes back after its daemon restarts'() {
      const room = `restart-cam-${Date.now()}`
      const pa = await openClient(a, room)
      const pb = await openClient(b, room)
      await until('daemons joined', async () => (await t(pa)).joins.includes(b.peerId) && (await t(pb)).joins.includes(a.peerId), 30000)
      await camera(pb)
      await pb.evaluate(() => window.troom.addStream(window.CAM, null, {who: 'b', label: 'restart'}))
      await until('page a gets b\'s camera', async () => (await t(pa)).tracks.some(x => x.peer === b.peerId && x.kind === 'video'), 30000)
      const before = (await t(pa)).tracks.length
      // b's daemon goes away and comes back; page b's client reconnects, rejoins and publishes
      // its camera again without the page doing anything.
      await b.stop('SIGTERM')
      await b.start()
      const again = await until(
        'page a gets b\'s camera again after b\'s daemon restarted',
        async () => (await t(pa)).tracks.slice(before).find(x => x.peer === b.peerId && x.kind === 'video'),
        40000
      ).catch(async e => {
        console.log('# page b: ' + JSON.stringify(await pb.evaluate(() => ({errors: window.t.errors, states: window.t.states, published: window.tnode._published.size}))))
        console.log('# page a tracks: ' + JSON.stringify((await t(pa)).tracks))
        console.log('# leg b: ' + JSON.stringify(await legState(pb)))
        throw e
      })
      assert.deepEqual(again.meta, {who: 'b', label: 'restart'})
      const decoded = await framesDecoded(pa)
      await until('page a plays it', async () => (await framesDecoded(pa)) >= decoded + 25, 30000)
      await pa.close()
      await pb.close()
    }
  },
  async () => {
    await browser.close()
    await a.destroy()
    await b.destroy()
  },
  async () => {
    for (const d of [a, b]) console.log(`# daemon log:\n${d.log.split('\n').slice(-40).join('\n')}`)
  }
)

// Media between unmodified Trystero 0.25.4 pages (Chromium with a fake camera) and meshrtcd:
// a page's stream reaches the daemon's apps with its metadata and is recorded; a daemon's
// published file plays in a page. Files are made with ffmpeg and checked with ffprobe.
import {mkdtempSync, existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execFileSync, spawn} from 'node:child_process'
import assert from 'node:assert/strict'
import {Daemon, MESHRTC, launchBrowser, runTests, until, serveTrysteroPage} from './lib.mjs'

// Every RTCPeerConnection the page makes, so a failure can show which one carried what.
const keepConnections = `
window.PCS = []
const Native = window.RTCPeerConnection
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.PCS.push(this) }
  async setRemoteDescription(d) {
    try { return await super.setRemoteDescription(d) } catch (e) { (window.SRD_ERRORS ??= []).push(d?.type + ': ' + e.message + ' ' + (d?.sdp ?? '').replaceAll(String.fromCharCode(13, 10), '|')); throw e }
  }
}`
const {server, port} = await serveTrysteroPage(keepConnections)
const browser = await launchBrowser(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'])
const context = await browser.newContext()
const APP = 'trystero-media'
const tmp = mkdtempSync(join(tmpdir(), 'meshrtc-media-'))
const daemons = []
const procs = []

/** Runs `meshrtc record` on a daemon; collects its JSON lines. */
const record = (daemon, room, dir) => {
  const proc = spawn(MESHRTC, ['--daemon', daemon.daemon, 'record', room, '--app', APP, '--dir', dir], {stdio: ['ignore', 'pipe', 'inherit']})
  procs.push(proc)
  const r = {lines: []}
  let buf = ''
  proc.stdout.on('data', d => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      r.lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
  })
  return r
}

/** A Trystero page in `room` through `relay`; media events land in window.M. */
const openPage = async (relay, room) => {
  const page = await context.newPage()
  await page.goto(`http://127.0.0.1:${port}/`)
  await until('trystero loaded', () => page.evaluate(() => Boolean(window.trysteroReady)))
  await page.evaluate(({relay, room, app}) => {
    const M = (window.M = {joins: [], streams: []})
    const r = (window.R = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, room))
    r.onPeerJoin = id => M.joins.push(id)
    r.onPeerStream = (stream, peerId, meta) => {
      M.streams.push({peerId, meta, id: stream.id})
      const v = document.createElement('video')
      v.muted = true
      v.autoplay = true
      v.srcObject = stream
      document.body.append(v)
    }
  }, {relay, room, app: APP})
  return page
}

/** Frames the page's video elements decoded (from the inbound RTP stats of its connections). */
const framesDecoded = page =>
  page.evaluate(async () => {
    let n = 0
    for (const pc of Object.values(window.R.getPeers())) {
      const stats = await pc.getStats()
      stats.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0 })
    }
    return n
  })

const probeFrames = path =>
  Number(JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames', '-of', 'json', path]).toString()).streams[0].nb_read_frames)

await runTests(
  {
    async 'a Trystero page\'s camera stream reaches the daemon with its metadata and is recorded'() {
      const d = await Daemon.withEmbeddedRelay()
      daemons.push(d)
      const room = 'page-to-daemon'
      const listener = d.listen(room, {app: APP})
      const dir = join(tmp, 'page-to-daemon')
      const rec = record(d, room, dir)
      const page = await openPage(d.relayUrl, room)
      await until('page joined the daemon', () => page.evaluate(id => window.M.joins.includes(id), d.peerId), 30000)
      await page.evaluate(async () => {
        window.CAM = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240, frameRate: 25}})
        window.R.addStream(window.CAM, {metadata: {kind: 'camera', who: 'page'}})
      })
      const add = await listener.wait('stream:add at the daemon', m => m.event === 'stream:add', 30000).catch(async e => {
        const state = await page.evaluate(async () => {
          const out = []
          for (const pc of window.PCS.filter(pc => pc.connectionState !== 'new')) {
            const stats = await pc.getStats()
            let sent = 0
            stats.forEach(s => { if (s.type === 'outbound-rtp') sent += s.packetsSent ?? 0 })
            out.push({ice: pc.iceConnectionState, signaling: pc.signalingState, connection: pc.connectionState, transceivers: pc.getTransceivers().map(t => [t.mid, t.direction, t.currentDirection]), sent})
          }
          return out
        })
        console.log('# page connections: ' + JSON.stringify(state))
        console.log('# page errors: ' + JSON.stringify(await page.evaluate(() => window.SRD_ERRORS ?? [])))
        throw e
      })
      assert.deepEqual(add.meta, {kind: 'camera', who: 'page'})
      const track = await listener.wait('track:add at the daemon', m => m.event === 'track:add', 30000)
      assert.equal(track.kind, 'video')
      await new Promise(r => setTimeout(r, 3000))
      await page.evaluate(() => window.R.removeStream(window.CAM))
      const done = await until('the recording finished', () => rec.lines.find(l => l.event === 'recorded'), 30000)
      assert.ok(existsSync(done.path), done.path)
      const frames = probeFrames(done.path)
      console.log(`# media: page camera recorded: ${frames} frames decode, ${done.frames} received, ${done.duration_ms} ms`)
      assert.ok(frames >= 25, `only ${frames} frames decode`)
      assert.ok(listener.find(m => m.event === 'track:remove'), 'the removed stream was not seen as removed')
      await listener.stop()
      await page.close()
    },

    async 'a file a daemon publishes plays in a Trystero page'() {
      const d = await Daemon.withEmbeddedRelay()
      daemons.push(d)
      const room = 'daemon-to-page'
      const video = join(tmp, 'clip.ivf')
      execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-t', '4', '-c:v', 'libvpx', '-g', '25', '-b:v', '400k', video])
      const page = await openPage(d.relayUrl, room)
      const publish = spawn(MESHRTC, ['--daemon', d.daemon, 'publish', room, '--app', APP, '--video', video, '--wait-peers', '1'], {stdio: ['ignore', 'pipe', 'inherit']})
      procs.push(publish)
      const stream = await until('onPeerStream in the page', () => page.evaluate(() => window.M.streams[0]), 30000)
      assert.equal(stream.peerId, d.peerId)
      assert.deepEqual(stream.meta, {file: 'clip.ivf'})
      const frames = await until('the page decodes frames', async () => ((await framesDecoded(page)) >= 25 ? framesDecoded(page) : null), 30000)
      console.log(`# media: page decoded ${frames} frames of the daemon's file`)
      const code = await new Promise(r => (publish.exitCode !== null ? r(publish.exitCode) : publish.once('exit', r)))
      assert.equal(code, 0, 'publish failed')
      await page.close()
    }
  },
  async () => {
    for (const p of procs) p.kill('SIGKILL')
    await browser.close()
    server.close()
    for (const d of daemons) await d.destroy()
  },
  async () => {
    for (const d of daemons) console.log(`# daemon log:\n${d.log.split('\n').slice(-40).join('\n')}`)
  }
)

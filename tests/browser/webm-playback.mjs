// A recording people can play: `meshrtc record --format webm` writes one WebM of a stream a
// daemon published (`meshrtc publish --file`, VP8 + Opus made by ffmpeg), and headless Chromium
// plays it in a <video> element: it knows the duration and the picture size, time advances, and
// both the video and the audio decoders get bytes.
import {execFileSync, spawn} from 'node:child_process'
import {createServer} from 'node:http'
import {mkdtempSync, readFileSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import assert from 'node:assert/strict'
import {Daemon, MESHRTC, freePort, launchBrowser, runTests, until} from './lib.mjs'

const tmp = mkdtempSync(join(tmpdir(), 'meshrtc-webm-'))
const a = await Daemon.withEmbeddedRelay()
const b = await Daemon.withRelays([a.relayUrl])
const browser = await launchBrowser(['--autoplay-policy=no-user-gesture-required'])

await runTests(
  {
    'a recorded WebM plays in Chromium with picture and sound': async () => {
      const clip = join(tmp, 'clip.webm')
      execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
        '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
        '-t', '4', '-c:v', 'libvpx', '-g', '25', '-b:v', '500k', '-c:a', 'libopus', clip])
      const out = join(tmp, 'rec')
      const recorder = spawn(MESHRTC, ['--daemon', b.daemon, 'record', 'webm-play', '--format', 'webm', '--dir', out], {stdio: ['ignore', 'pipe', 'inherit']})
      let lines = ''
      recorder.stdout.on('data', d => (lines += d))
      execFileSync(MESHRTC, ['--daemon', a.daemon, 'publish', 'webm-play', '--wait-peers', '1', '--file', clip])
      await until('the recording finalized', () => lines.includes('"recorded"'), 30000)
      recorder.kill('SIGINT')
      const file = join(out, readdirSync(out).find(f => f.endsWith('.webm')))
      const bytes = readFileSync(file)
      const port = await freePort()
      const server = createServer((req, res) => {
        if (req.url === '/rec.webm') {
          res.setHeader('content-type', 'video/webm')
          res.end(bytes)
        } else {
          res.setHeader('content-type', 'text/html')
          res.end('<!doctype html><video id=v src="/rec.webm" muted playsinline></video>')
        }
      })
      await new Promise(r => server.listen(port, '127.0.0.1', r))
      try {
        const page = await browser.newPage()
        await page.goto(`http://127.0.0.1:${port}/`)
        const meta = await page.evaluate(
          () =>
            new Promise((resolve, reject) => {
              const v = document.getElementById('v')
              const done = () => resolve({duration: v.duration, width: v.videoWidth, height: v.videoHeight})
              if (v.readyState >= 1) done()
              v.onloadedmetadata = done
              v.onerror = () => reject(new Error('media error ' + v.error?.code + ' ' + v.error?.message))
            })
        )
        assert.ok(meta.duration > 3 && meta.duration < 5, `duration ${meta.duration}`)
        assert.deepEqual([meta.width, meta.height], [320, 240])
        await page.evaluate(() => document.getElementById('v').play())
        await until('playback advances', () => page.evaluate(() => document.getElementById('v').currentTime > 1.5), 10000)
        const decoded = await page.evaluate(() => {
          const v = document.getElementById('v')
          return {video: v.webkitVideoDecodedByteCount, audio: v.webkitAudioDecodedByteCount, frames: v.getVideoPlaybackQuality().totalVideoFrames}
        })
        console.log(`# played ${file}: ${JSON.stringify({...meta, ...decoded})}`)
        assert.ok(decoded.video > 0 && decoded.audio > 0, JSON.stringify(decoded))
        assert.ok(decoded.frames > 20, `${decoded.frames} frames shown`)
      } finally {
        server.close()
      }
    }
  },
  async () => {
    await browser.close()
    await a.destroy()
    await b.destroy()
    rmSync(tmp, {recursive: true, force: true})
  }
)

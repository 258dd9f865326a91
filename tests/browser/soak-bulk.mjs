// Bulk soak toward a browser (BENCHMARKS.md, "Toward Chromium"): one daemon sends N messages of
// 3 MiB (default 200), one after another, to an unmodified Trystero page in headless Chromium,
// all on loopback. Each message differs, is timed from the send to its arrival in the page and
// checked there; one over 5 s is a stall, one not there after 60 s is lost.
//
//   node tests/browser/soak-bulk.mjs [N]     (after `cargo build`; prints one JSON line last)
import {writeFileSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Daemon, launchBrowser, serveTrysteroPage, until} from './lib.mjs'

const N = Number(process.argv[2] ?? 200)
const SIZE = 3 << 20
const STALL_MS = 5000
const APP = 'soak-bulk'
const ROOM = 'bulk'

const checksum = bytes => bytes.reduce((s, b) => (s * 31 + b) >>> 0, 0)
const message = i => {
  const b = Buffer.alloc(SIZE)
  for (let k = 0; k < SIZE; k++) b[k] = (k * 13 + i * 7) & 255
  return b
}

const tmp = mkdtempSync(join(tmpdir(), 'meshrtc-soak-bulk-'))
const daemon = await Daemon.withEmbeddedRelay()
const listener = daemon.listen(ROOM, {app: APP})
const {port, server} = await serveTrysteroPage()
const browser = await launchBrowser()
const page = await (await browser.newContext()).newPage()
await page.goto(`http://127.0.0.1:${port}/`)
await until('trystero', () => page.evaluate(() => Boolean(window.trysteroReady)))
await page.evaluate(
  ({relay, room, app}) => {
    window.got = {}
    const r = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, room)
    r.onPeerJoin = id => (window.joined = id)
    const chat = r.makeAction('chat')
    chat.onMessage = (data, {metadata}) => {
      const u = new Uint8Array(data)
      let sum = 0
      for (let k = 0; k < u.length; k++) sum = (sum * 31 + u[k]) >>> 0
      window.got[metadata?.name] = {bytes: u.length, sum}
    }
  },
  {relay: daemon.relayUrl, room: ROOM, app: APP}
)
await until('the page and the daemon linked', () => page.evaluate(() => window.joined), 30000)

const times = []
let stalls = 0
let lost = 0
let corrupt = 0
for (let i = 0; i < N; i++) {
  const data = message(i)
  const file = join(tmp, 'm.bin')
  writeFileSync(file, data)
  const name = `m${i}`
  const started = Date.now()
  daemon.cli('send', ROOM, 'chat', JSON.stringify({name}), '--app', APP, '--file', file)
  let got
  try {
    got = await until(`message ${i}`, () => page.evaluate(n => window.got[n], name), 60000)
  } catch {
    lost++
    console.error(`message ${i} not in the page after 60 s\n${daemon.linkReport()}`)
    continue
  }
  const ms = Date.now() - started
  await page.evaluate(n => delete window.got[n], name)
  if (got.bytes !== SIZE || got.sum !== checksum(data)) corrupt++
  if (ms > STALL_MS) {
    stalls++
    console.error(`message ${i} took ${ms} ms\n${daemon.linkReport()}`)
  }
  times.push(ms)
}
const sorted = [...times].sort((a, b) => a - b)
const at = q => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null
const seconds = times.reduce((s, t) => s + t, 0) / 1000
console.log(
  JSON.stringify({
    messages: N,
    mib: SIZE >> 20,
    arrived: times.length,
    stalls,
    lost,
    corrupt,
    p50_ms: at(0.5),
    p99_ms: at(0.99),
    max_ms: sorted.at(-1) ?? null,
    mb_s: seconds ? +((times.length * SIZE) / seconds / 1e6).toFixed(1) : null
  })
)
await listener.stop()
await browser.close()
server.close()
await daemon.destroy()
rmSync(tmp, {recursive: true, force: true})
process.exit(stalls || lost || corrupt ? 1 : 0)

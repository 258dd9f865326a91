// Trystero 0.25.4 baseline for `cargo bench --bench compare`: two headless Chromium pages in one
// room through the relay given in $RELAY; prints one JSON line of figures.
import {launchBrowser, serveTrysteroPage, until} from './lib.mjs'

const relay = process.env.RELAY
const {port, server} = await serveTrysteroPage()
const browser = await launchBrowser()
const ctx = await browser.newContext()
const open = async () => {
  const p = await ctx.newPage()
  await p.goto(`http://127.0.0.1:${port}/`)
  await until('trystero', () => p.evaluate(() => Boolean(window.trysteroReady)))
  return p
}
const join = (p, room) =>
  p.evaluate(
    ({relay, room}) => {
      window.t0 = performance.now()
      const r = (window.R = window.trysteroReady.joinRoom({appId: 'bench-trystero', relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, room))
      window.peers = []
      r.onPeerJoin = id => {
        window.peers.push(id)
        window.joinMs ??= performance.now() - window.t0
      }
      window.A = r.makeAction('bench')
      window.got = 0
      window.A.onMessage = data => {
        window.got++
        if (window.echo) window.A.send(data)
      }
    },
    {relay, room}
  )
const a = await open()
const b = await open()
await join(a, 'bench')
await join(b, 'bench')
await until('joined', () => b.evaluate(() => window.peers.length === 1), 30000)
const joinMs = await b.evaluate(() => window.joinMs)

const transfer = async (size, count) => {
  await b.evaluate(() => (window.got = 0))
  const t = Date.now()
  await a.evaluate(
    async ({size, count}) => {
      const data = new Uint8Array(size)
      for (let i = 0; i < count; i++) await window.A.send(data)
    },
    {size, count}
  )
  await until('received', () => b.evaluate(n => window.got >= n, count), 120000)
  return (Date.now() - t) / 1000
}
const secs = await transfer(64 * 1024, 400)
const throughput = (64 * 1024 * 400) / secs / 1e6
const small = 5000
const rate = small / (await transfer(100, small))
await b.evaluate(() => (window.echo = true))
const rtts = await a.evaluate(async () => {
  const out = []
  for (let i = 0; i < 200; i++) {
    const before = window.got
    const t = performance.now()
    await window.A.send(new Uint8Array(100))
    while (window.got === before) await new Promise(r => setTimeout(r, 0))
    out.push(performance.now() - t)
  }
  return out.sort((x, y) => x - y)
})
// Page ↔ daemon: a daemon already holds each of $DAEMON_ROOMS (app bench-trystero); a fresh page
// joins it and times joinRoom → onPeerJoin, as the page's user would see it.
const daemonJoins = []
for (const room of (process.env.DAEMON_ROOMS ?? '').split(',').filter(Boolean)) {
  const p = await open()
  await join(p, room)
  await until('daemon joined the page', () => p.evaluate(() => window.peers.length >= 1), 30000)
  daemonJoins.push(await p.evaluate(() => window.joinMs))
  await p.evaluate(() => window.R.leave())
  await p.close()
}
daemonJoins.sort((x, y) => x - y)
const pct = q => (daemonJoins.length ? daemonJoins[Math.min(daemonJoins.length - 1, Math.floor(q * daemonJoins.length))] : null)
console.log(
  JSON.stringify({
    throughput_mbs: throughput,
    msg_rate: rate,
    rtt_p50_ms: rtts[100],
    join_p50_ms: joinMs,
    page_daemon_join_p50_ms: pct(0.5),
    page_daemon_join_p99_ms: pct(0.99)
  })
)
await browser.close()
server.close()

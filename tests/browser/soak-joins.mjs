// Join soak for `cargo bench --bench joins`: for each room of $DAEMON_ROOMS (app $APP, which a
// daemon already holds), a fresh unmodified Trystero page joins through $RELAY and waits up to
// 20 s for the daemon; prints one JSON line: each join's time (ms) or null for a miss.
import {launchBrowser, serveTrysteroPage, until} from './lib.mjs'

const relay = process.env.RELAY
const app = process.env.APP
const {port, server} = await serveTrysteroPage()
const browser = await launchBrowser()
const ctx = await browser.newContext()
const joins = []
for (const room of (process.env.DAEMON_ROOMS ?? '').split(',').filter(Boolean)) {
  const p = await ctx.newPage()
  await p.goto(`http://127.0.0.1:${port}/`)
  await until('trystero', () => p.evaluate(() => Boolean(window.trysteroReady)))
  await p.evaluate(
    ({relay, room, app}) => {
      window.t0 = performance.now()
      const r = (window.R = window.trysteroReady.joinRoom({appId: app, relayConfig: {urls: [relay]}, rtcConfig: {iceServers: []}}, room))
      r.onPeerJoin = () => (window.joinMs ??= performance.now() - window.t0)
    },
    {relay, room, app}
  )
  try {
    await until('daemon joined the page', () => p.evaluate(() => window.joinMs !== undefined), 20000)
    joins.push(await p.evaluate(() => window.joinMs))
  } catch {
    joins.push(null)
    console.error(`miss: room ${room}`)
  }
  await p.evaluate(() => window.R.leave())
  await p.close()
}
console.log(JSON.stringify({joins}))
await browser.close()
server.close()

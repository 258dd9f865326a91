// Shared helpers of the browser tests: real daemons, a loopback relay, headless Chromium.
import {spawn, execFileSync} from 'node:child_process'
import {createServer as createHttpServer} from 'node:http'
import {mkdtempSync, rmSync, readFileSync, appendFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {chromium} from 'playwright-core'

// `cargo test` passes the binaries it built; run by hand, they are wherever cargo builds
// (`$CARGO_TARGET_DIR` or target/), which `cargo metadata` knows.
const built = name => {
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--offline']).toString())
  return join(meta.target_directory, 'debug', name)
}
export const MESHRTCD = process.env.MESHRTCD ?? built('meshrtcd')
export const MESHRTC = process.env.MESHRTC ?? built('meshrtc')

// Ports below the kernel's ephemeral range (32768+), so an outgoing connection cannot take one
// between the check and the daemon binding it.
let nextPort = 20000 + ((process.pid * 7919 + Date.now()) % 12000)
const tryPort = port =>
  new Promise(resolve => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
export const freePort = async () => {
  for (let i = 0; i < 12000; i++) {
    const port = 20000 + ((nextPort++ - 20000) % 12000)
    if (await tryPort(port)) return port
  }
  throw new Error('no free loopback port between 20000 and 32000')
}

export const sleep = ms => new Promise(r => setTimeout(r, ms))

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export const until = async (what, fn, ms = 20000) => {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** A meshrtcd process with its own data dir, WebSocket bridge port and optional embedded relay. */
export class Daemon {
  /** Every daemon started and not destroyed: a failing test reports their links. */
  static running = new Set()

  constructor({relays = [], embedded = null, extra = [], netns = null} = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'meshrtc-browser-'))
    this.relays = relays
    this.embedded = embedded
    this.extra = extra
    this.netns = netns
    this.wsPort = 0
  }

  /** A daemon whose (persistent) peer id satisfies `pred`, e.g. to pick the offer direction. */
  static async withIdWhere(pred, opts = {}) {
    for (let i = 0; i < 5000; i++) {
      const d = new Daemon(opts)
      const id = execFileSync(MESHRTCD, ['--data-dir', d.dir, 'identity']).toString().trim()
      if (pred(id)) {
        await d.start()
        return d
      }
      rmSync(d.dir, {recursive: true, force: true})
    }
    throw new Error('no identity matched')
  }

  /** Runs `meshrtc listen` and collects its JSON lines. */
  listen(room, {app = 'meshrtc', password = '', requireE2e = false, keep = [], since, serve = [], respond} = {}) {
    const args = ['--daemon', this.daemon, 'listen', room, '--app', app, '--password', password]
    if (requireE2e) args.push('--require-e2e')
    for (const c of serve) args.push('--serve', c)
    if (respond) args.push('--respond', respond)
    for (const k of keep) args.push('--keep', k)
    if (since) args.push('--since', since)
    const proc = spawn(MESHRTC, args, {stdio: ['ignore', 'pipe', 'inherit']})
    const l = {lines: [], proc}
    let buf = ''
    proc.stdout.on('data', d => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        l.lines.push(JSON.parse(buf.slice(0, i)))
        buf = buf.slice(i + 1)
      }
    })
    l.find = pred => l.lines.find(pred)
    l.wait = (what, pred, ms) => until(what, () => l.lines.find(pred), ms)
    l.stop = () => new Promise(r => (proc.exitCode !== null ? r() : (proc.once('exit', r), proc.kill('SIGINT'))))
    return l
  }

  /** Runs `meshrtc` with these arguments against this daemon; returns stdout. */
  cli(...args) {
    return execFileSync(MESHRTC, ['--daemon', this.daemon, ...args], {maxBuffer: 64 << 20}).toString()
  }

  static async withEmbeddedRelay(extra = []) {
    const d = new Daemon({embedded: `127.0.0.1:${await freePort()}`, extra})
    await d.start()
    return d
  }

  static async withRelays(relays, extra = []) {
    const d = new Daemon({relays, extra})
    await d.start()
    return d
  }

  get relayUrl() {
    return `ws://${this.embedded}`
  }

  get daemon() {
    return `unix:${join(this.dir, 'meshrtcd.sock')}`
  }

  get origin() {
    return `http://127.0.0.1:${this.wsPort}`
  }

  async start() {
    if (!this.wsPort) this.wsPort = await freePort()
    if (this.embedded === 'auto') this.embedded = `127.0.0.1:${await freePort()}`
    // No public STUN unless the test names its own ICE servers.
    const ice = this.extra.includes('--ice-server') ? [] : ['--ice-server', 'none']
    const args = ['--data-dir', this.dir, '--ice-addr', this.iceAddr ?? '127.0.0.1', ...ice, '--ws', `127.0.0.1:${this.wsPort}`]
    for (const r of this.relays) args.push('--relay', r)
    if (this.embedded) args.push('--embedded-relay', this.embedded)
    args.push(...this.extra)
    // In a named network namespace when asked (the API socket is a file, so the CLI still works).
    const [cmd, argv] = this.netns ? ['nsenter', [`--net=/run/netns/${this.netns}`, MESHRTCD, ...args]] : [MESHRTCD, args]
    this.proc = spawn(cmd, argv, {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, RUST_LOG: process.env.DAEMON_LOG ?? 'info,webrtc=warn,rtc=warn'}})
    this.log = ''
    this.proc.stderr.on('data', d => (this.log += d))
    // DAEMON_LOG_DIR keeps every daemon's whole log (a failure prints only its tail).
    if (process.env.DAEMON_LOG_DIR) this.proc.stderr.on('data', d => appendFileSync(`${process.env.DAEMON_LOG_DIR}/${this.wsPort}.log`, d))
    await until('daemon start', () => this.status().catch(() => null))
    this.peerId = (await this.status()).peer_id
    Daemon.running.add(this)
  }

  /**
   * What this daemon's links know, room by room: each peer's ICE, DTLS, SCTP and channel state,
   * the bytes waiting in SCTP and in the writer's queue, and what crossed the channel.
   */
  linkReport() {
    const run = args => execFileSync(MESHRTC, ['--daemon', this.daemon, ...args], {stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000}).toString()
    try {
      const status = JSON.parse(run(['status', '--json']))
      const lines = [`drops ${JSON.stringify(status.drops ?? {})}`]
      for (const r of status.rooms ?? []) {
        const peers = JSON.parse(run(['peers', r.room, '--app', r.app, '--json']))
        if (!peers.length) lines.push(`${r.app}/${r.room}: no joined peer`)
        for (const p of peers) {
          const h = p.health
          lines.push(
            `${r.app}/${r.room} ${p.id}: ` +
              (h
                ? `ice ${h.ice} dtls ${h.dtls} sctp ${h.sctp} channel ${h.channel}, ${h.buffered_bytes} B buffered in SCTP of a ${h.window_bytes} B window, ` +
                  `${h.queued_frames} frames queued, sent ${h.messages_sent} msgs / ${h.bytes_sent} B, received ${h.messages_received} msgs / ${h.bytes_received} B`
                : 'no open data channel')
          )
        }
      }
      return lines.join('\n')
    } catch (e) {
      return `(no link report: ${e.message.split('\n')[0]})`
    }
  }

  async status() {
    return JSON.parse(execFileSync(MESHRTC, ['--daemon', this.daemon, 'status', '--json'], {stdio: ['ignore', 'pipe', 'ignore']}).toString())
  }

  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null) return
    const done = new Promise(r => this.proc.once('exit', r))
    this.proc.kill(signal)
    await done
  }

  async destroy() {
    Daemon.running.delete(this)
    await this.stop('SIGKILL')
    rmSync(this.dir, {recursive: true, force: true})
  }
}

/**
 * Headless Debian Chromium. The background-networking flags keep it off the internet; the
 * loopback and mDNS flags let WebRTC use 127.0.0.1 host candidates (Chromium otherwise hides
 * host addresses behind .local names and ignores loopback).
 */
export const launchBrowser = (extraArgs = []) =>
  chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      ...extraArgs
    ]
  })

/** Runs named async test functions in order, printing a TAP-like line each; exits non-zero on failure. */
export const runTests = async (tests, cleanup, diagnostics) => {
  let failed = 0
  const only = process.argv[2]
  for (const [name, fn] of Object.entries(tests)) {
    if (only && !name.includes(only)) continue
    const t = Date.now()
    try {
      // A hung step fails its test instead of hanging the suite.
      let timer
      const limit = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('test timed out after 120 s')), 120000)))
      await Promise.race([fn(), limit]).finally(() => clearTimeout(timer))
      console.log(`ok - ${name} (${Date.now() - t} ms)`)
    } catch (err) {
      failed++
      console.log(`not ok - ${name}: ${err?.stack ?? err}`)
      // What every daemon's links knew, and its log's tail, next to the failure.
      for (const d of Daemon.running) {
        if (!d.proc || d.proc.exitCode !== null) continue
        console.log(`# links of daemon ${d.peerId}:\n# ${d.linkReport().split('\n').join('\n# ')}`)
        console.log(`# log tail of daemon ${d.peerId}:\n# ${d.log.split('\n').slice(-40).join('\n# ')}`)
      }
      await diagnostics?.()
    }
  }
  await cleanup?.()
  process.exit(failed ? 1 : 0)
}

export const readJson = path => JSON.parse(readFileSync(path, 'utf8'))

/**
 * Serves a page that loads the npm package `trystero` (bundled with esbuild, unmodified) and
 * exposes it as window.trysteroReady. `prelude` runs before Trystero is imported.
 */
export const serveTrysteroPage = async (prelude = '') => {
  const {bundle, page} = await trysteroPage(prelude)
  const port = await freePort()
  const server = createHttpServer((req, res) => {
    res.setHeader('content-type', req.url === '/trystero.js' ? 'text/javascript' : 'text/html')
    res.end(req.url === '/trystero.js' ? bundle : page)
  })
  await new Promise(r => server.listen(port, '127.0.0.1', r))
  return {port, server}
}

/** The page of `serveTrysteroPage` and its Trystero bundle, as strings. */
export const trysteroPage = async (prelude = '') => {
  const {build} = await import('esbuild')
  const here = new URL('.', import.meta.url).pathname
  const bundle = (
    await build({stdin: {contents: "export {joinRoom, selfId} from 'trystero'", resolveDir: here}, bundle: true, format: 'esm', write: false})
  ).outputFiles[0].text
  const page = `<!doctype html><title>trystero page</title><script>${prelude}</script><script type="module">
import {joinRoom, selfId} from '/trystero.js'
window.trysteroReady = {joinRoom, selfId}
</script>`
  return {bundle, page}
}

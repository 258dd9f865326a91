// meshrtc browser client: rooms and channels through the local meshrtcd WebSocket bridge.
// No build step: import this file as an ES module. The API mirrors GenosRTC's `db.room`.
// Messages are the proto3 JSON mapping of proto/meshrtc/v1/meshrtc.proto (ClientMessage /
// ServerMessage); bytes travel as base64.

/** @typedef {'peer:join' | 'peer:leave' | 'peer:lost' | 'peer:seen' | 'mesh:state' | 'mesh:peer-state' | 'error' | 'stream:add' | 'track:add' | 'track:remove'} RoomEvent */
/** @typedef {'connecting' | 'open' | 'reconnecting' | 'closed'} NodeState */
/** @typedef {'fulfilled' | 'rejected' | 'timeout' | 'disconnected'} RequestStatus */

const DEFAULT_URL = 'ws://127.0.0.1:7701/ws'

const toBase64 = bytes => {
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000))
  }
  return btoa(s)
}

const fromBase64 = text => {
  const s = atob(text)
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** Small listener registry shared by Node, Room and Channel. */
class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map()
  }

  /** Adds a listener. */
  on(event, cb) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set())
    this._listeners.get(event).add(cb)
    return this
  }

  /** Removes a listener. */
  off(event, cb) {
    this._listeners.get(event)?.delete(cb)
    return this
  }

  _emit(event, ...args) {
    for (const cb of this._listeners.get(event) ?? []) {
      try {
        cb(...args)
      } catch (err) {
        console.error('meshrtc listener error', err)
      }
    }
  }
}

/**
 * Converts app data to a proto Payload (JSON mapping). Messages carry `meta` with binary data
 * only (Trystero's wire); a request carries its own metadata whatever the data (`anyMeta`).
 */
const toPayload = async (data, meta, anyMeta = false) => {
  if (data instanceof Blob) data = new Uint8Array(await data.arrayBuffer())
  if (data instanceof ArrayBuffer) data = new Uint8Array(data)
  const metaJson = meta === undefined ? {} : {metaJson: JSON.stringify(meta)}
  if (ArrayBuffer.isView(data)) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    return {binary: toBase64(bytes), ...metaJson}
  }
  if (meta !== undefined && !anyMeta) throw new TypeError('meshrtc: meta is only sent with binary data')
  if (typeof data === 'string') return {text: data, ...metaJson}
  if (data === undefined) throw new TypeError('meshrtc: nothing to send')
  return {json: JSON.stringify(data), ...metaJson}
}

/** Converts a proto Payload to [data, meta]. */
const AGE_UNITS = {s: 1, m: 60, h: 3600, d: 86400}

function ageSeconds(text) {
  const m = /^(\d+)([smhd])$/.exec(String(text))
  if (!m || Number(m[1]) === 0) throw new Error(`keep/since: ${text} is not an age such as 30m, 12h, 7d`)
  return Number(m[1]) * AGE_UNITS[m[2]]
}

/** `{chat: 10000, files: '7d', log: [500, '12h']}` as the daemon's keep rules. */
function keepRules(keep) {
  return Object.entries(keep).map(([channel, limits]) => {
    const rule = {channel, maxMessages: 0, maxAgeSeconds: 0}
    for (const l of Array.isArray(limits) ? limits : [limits]) {
      if (typeof l === 'number') rule.maxMessages = l
      else rule.maxAgeSeconds = ageSeconds(l)
    }
    return rule
  })
}

/** `since`: a cursor (number), `'all'`, or an age such as `'10m'`. */
function sinceOf(since) {
  if (since === undefined || since === null) return undefined
  if (since === 'all') return {all: true}
  if (typeof since === 'number') return {cursor: String(since)}
  return {ageSeconds: ageSeconds(since)}
}

const fromPayload = payload => {
  const meta = payload?.metaJson ? JSON.parse(payload.metaJson) : undefined
  if (payload?.binary !== undefined) return [fromBase64(payload.binary), meta]
  if (payload?.json !== undefined) return [JSON.parse(payload.json), meta]
  return [payload?.text ?? '', meta]
}

/** The proto's peer types as the names the events carry. */
const PEER_TYPES = {PEER_TYPE_MEMBER: 'member', PEER_TYPE_KEEPER: 'keeper'}

/** A cells room's overlay as this node sees it, kept up to date from `mesh:*` events. */
class MeshView {
  constructor() {
    this._reset()
  }

  _reset() {
    this._state = null
    /** @type {Map<string, {linked: boolean, cell: number, bridge: boolean}>} */
    this._peers = new Map()
  }

  /** This node's place and its linked members, or null before the first topology (or without cells). */
  getState() {
    if (!this._state) return null
    return {...this._state, peers: Object.fromEntries([...this._peers].map(([p, s]) => [p, {...s}]))}
  }
}

/** A named channel of a room. */
export class Channel extends Emitter {
  constructor(room, name) {
    super()
    this.room = room
    this.name = name
  }

  /** Adds a listener; the first `message` listener also gets what arrived before it (a replay). */
  on(event, cb) {
    super.on(event, cb)
    if (event === 'message') {
      const held = this.room._held.get(this.name) ?? []
      this.room._held.delete(this.name)
      for (const args of held) this._emit('message', ...args)
    }
    return this
  }

  /**
   * Sends data to every peer, or to `targets` (a peer id or an array of them).
   * Strings arrive as strings, objects as objects, binary (ArrayBuffer, typed arrays, Blob) as bytes.
   * @returns {Promise<string[]>} the peers the message was handed to
   */
  async send(data, targets, meta, onProgress) {
    const list = targets == null ? [] : Array.isArray(targets) ? targets : [targets]
    const payload = await toPayload(data, meta)
    const reply = await this.room._node._request({
      send: {room: this.room._handle(), channel: this.name, payload, targets: list}
    })
    const delivered = reply.deliveredTo ?? []
    if (onProgress) for (const peer of delivered) onProgress(1, peer, meta)
    return delivered
  }

  /**
   * Asks one peer (a request action, as Trystero's `request`): resolves with its reply; rejects
   * with an Error whose `code` is 'rejected' (its message is the peer's), 'timeout' or
   * 'disconnected'. `timeoutMs`: 0 for the daemon's 30 s, at most 600 s.
   * @returns {Promise<any>}
   */
  async request(data, {target, timeoutMs = 0, meta} = {}) {
    if (typeof target !== 'string' || !target) throw new TypeError('meshrtc: request needs a target peer id')
    const [outcome] = await this.requestMany(data, {targets: [target], timeoutMs, meta})
    if (outcome.status === 'fulfilled') return outcome.value
    const err = new Error(outcome.status === 'rejected' ? outcome.error : `meshrtc: request to ${target}: ${outcome.status}`)
    err.code = outcome.status
    err.peerId = target
    throw err
  }

  /**
   * Asks several peers at once (Trystero's `requestMany`); never rejects for a peer's outcome.
   * @returns {Promise<Array<{peerId: string, status: RequestStatus, value?: any, meta?: any, error?: string}>>}
   *   one outcome per distinct target, in the order given
   */
  async requestMany(data, {targets, timeoutMs = 0, meta} = {}) {
    const list = [...new Set(Array.isArray(targets) ? targets : targets == null ? [] : [targets])]
    if (!list.length) throw new TypeError('meshrtc: requestMany needs at least one target peer id')
    const payload = await toPayload(data, meta, true)
    const node = this.room._node
    let asking
    const done = new Promise(resolve => (asking = {want: list, outcomes: new Map(), resolve}))
    let id
    try {
      await node._request(
        {request: {room: this.room._handle(), channel: this.name, payload, targets: list, timeoutMs: String(timeoutMs)}},
        requestId => {
          id = requestId
          node._asking.set(requestId, asking)
        }
      )
    } catch (err) {
      node._asking.delete(id)
      throw err
    }
    return done
  }

  /**
   * Answers peers' requests on this channel with `handler(data, fromPeerId, meta)`: what it
   * returns (or resolves with) is the reply; what it throws rejects the request with its message.
   * `null` stops serving: the channel is a plain one again, where requests arrive as messages
   * and go unanswered (as on a Trystero page's plain action).
   */
  async serve(handler) {
    if (handler != null && typeof handler !== 'function') throw new TypeError('meshrtc: serve takes a function or null')
    if (handler) this.room._serving.set(this.name, handler)
    else this.room._serving.delete(this.name)
    await this.room._node._request({serve: {room: this.room._handle(), channels: [...this.room._serving.keys()]}})
  }
}

/** How one target of a request ended (the proto's ResponseStatus). */
const RESPONSE_STATUS = {
  RESPONSE_STATUS_FULFILLED: 'fulfilled',
  RESPONSE_STATUS_REJECTED: 'rejected',
  RESPONSE_STATUS_TIMEOUT: 'timeout',
  RESPONSE_STATUS_DISCONNECTED: 'disconnected'
}

/** Settles one target of a `requestMany`; the promise resolves once every target has. */
const settle = (asking, peerId, outcome) => {
  if (!asking.want.includes(peerId) || asking.outcomes.has(peerId)) return false
  asking.outcomes.set(peerId, {peerId, ...outcome})
  if (asking.outcomes.size < asking.want.length) return false
  asking.resolve(asking.want.map(p => asking.outcomes.get(p)))
  return true
}

/** A joined room. */
export class Room extends Emitter {
  constructor(node, appId, roomId, password) {
    super()
    this._node = node
    this.appId = appId
    this.roomId = roomId
    this._password = password
    this._handleId = 0
    /** @type {Map<string, Channel>} */
    this._channels = new Map()
    /** @type {Set<string>} */
    this._peers = new Set()
    this._left = false
    this._keep = []
    this._since = undefined
    /** The newest cursor of a kept message this room delivered (a rejoin resumes after it). */
    this._lastCursor = 0
    /** Messages of channels nobody listens to yet (a replay right after the join), by channel. */
    this._held = new Map()
    /** Where this node sits in the room's cellular overlay (cells rooms). */
    this.mesh = new MeshView()
    /** Request handlers, by channel (`Channel.serve`). */
    this._serving = new Map()
  }

  /** Runs the channel's handler for a peer's request and sends its answer back. */
  _answer(q) {
    const handle = this._handleId
    const answer = result => this._node._request({respond: {room: handle, id: q.id, ...result}}).catch(() => {})
    const handler = this._serving.get(q.channel)
    if (!handler) return answer({error: 'request handler unavailable'})
    const [data, meta] = fromPayload(q.payload)
    Promise.resolve()
      .then(() => handler(data, q.from, meta))
      .then(value => toPayload(value === undefined ? null : value))
      .then(
        reply => answer({reply}),
        err => answer({error: String(err?.message ?? err)})
      )
  }

  /** Keeps a message until its channel gets a listener (at most 10,000 per room, oldest go). */
  _hold(channel, args) {
    if (!this._held.has(channel)) this._held.set(channel, [])
    const list = this._held.get(channel)
    list.push(args)
    if (list.length > 10000) list.shift()
  }

  _handle() {
    if (this._left) throw new Error('meshrtc: room was left')
    // Between a lost daemon and the rejoin: an old handle could name another room now.
    if (!this._handleId) throw new Error('meshrtc: not joined (the daemon is away)')
    return this._handleId
  }

  /** The channel called `name` (the same object on repeated calls). */
  channel(name) {
    if (typeof name !== 'string' || !name || name.startsWith('@_')) {
      throw new TypeError('meshrtc: channel names are non-empty and may not start with @_')
    }
    if (!this._channels.has(name)) this._channels.set(name, new Channel(this, name))
    return this._channels.get(name)
  }

  /** Peer ids currently joined, as an object keyed by peer id (like GenosRTC). */
  getPeers() {
    return Object.fromEntries([...this._peers].map(p => [p, true]))
  }

  /** Adds a listener; listening for remote media asks the daemon to forward the room's tracks. */
  on(event, cb) {
    super.on(event, cb)
    if ((event === 'stream:add' || event === 'track:add') && !this._wantsMedia) {
      this._wantsMedia = true
      if (!this._left) this._subscribeMedia().catch(err => this._emit('error', {code: 'media', message: String(err)}))
    }
    return this
  }

  async _subscribeMedia() {
    this._node._legPc()
    await this._node._request({legSubscribe: {room: this._handle()}})
  }

  /**
   * Sends every track of `stream` to all peers, or to `targets`, with `meta` (GenosRTC's addStream).
   * @returns {Promise<void>}
   */
  async addStream(stream, targets, meta) {
    await Promise.all(stream.getTracks().map(track => this.addTrack(track, stream, targets, meta)))
  }

  /** Stops sending the tracks of `stream`. */
  async removeStream(stream) {
    await Promise.all(stream.getTracks().filter(t => this._node._published.has(t)).map(t => this.removeTrack(t)))
  }

  /**
   * Sends `track` (of `stream`) to all peers, or to `targets`, with `meta`. The page's media goes
   * to its daemon over a loopback WebRTC leg; the daemon forwards it to the room's peers.
   * @returns {Promise<void>} once the daemon receives the track's media
   */
  async addTrack(track, stream, targets, meta) {
    const list = targets == null ? [] : Array.isArray(targets) ? targets : [targets]
    this._node._legPc()
    // Targets and meta are kept so the track can be published again after a daemon restart.
    const pub = {track, stream, room: this, sender: null, id: '', targets: list, meta}
    const reply = await this._node._request(
      {
        legPublish: {
          room: this._handle(),
          kind: track.kind,
          streamId: stream.id,
          trackId: track.id,
          targets: list,
          ...(meta === undefined ? {} : {metaJson: JSON.stringify(meta)})
        }
      },
      requestId => this._node._publishing.set(requestId, pub)
    )
    pub.id = reply.track
    this._node._published.set(track, pub)
  }

  /** Stops sending `track`. */
  async removeTrack(track) {
    const pub = this._node._published.get(track)
    if (!pub) return
    this._node._published.delete(track)
    await pub.sender?.replaceTrack(null)
    await this._node._request({removeTrack: {track: pub.id}})
  }

  /** Sends `newTrack` in place of `oldTrack` (no renegotiation); peers get `meta` with it. */
  async replaceTrack(oldTrack, newTrack, meta) {
    const pub = this._node._published.get(oldTrack)
    if (!pub) throw new Error('meshrtc: that track is not being sent')
    await pub.sender?.replaceTrack(newTrack)
    this._node._published.delete(oldTrack)
    pub.track = newTrack
    this._node._published.set(newTrack, pub)
    await this._node._request({
      replaceTrack: {track: pub.id, ...(meta === undefined ? {} : {metaJson: JSON.stringify(meta)})}
    })
  }

  /** Round trip to a peer, in milliseconds. */
  async ping(peerId) {
    const reply = await this._node._request({ping: {room: this._handle(), peer: peerId}})
    return reply.rttMs ?? 0
  }

  /** Leaves the room. */
  async leave() {
    if (this._left) return
    const handle = this._handleId
    this._left = true
    this._node._rooms.delete(this)
    for (const p of this._peers) this._emit('peer:leave', p)
    this._peers.clear()
    if (this._node._ws?.readyState === WebSocket.OPEN) await this._node._request({leave: {room: handle}})
  }

  async _join() {
    const reply = await this._node._request({
      join: {
        app: this.appId,
        room: this.roomId,
        password: this._password,
        ...(this._cells ? {cells: this._cells} : {}),
        ...(this._keep.length ? {keep: this._keep} : {}),
        ...(this._serving.size ? {serve: [...this._serving.keys()]} : {}),
        // After a reconnect, resume after the newest kept message seen: nothing is lost.
        ...(this._lastCursor ? {since: {cursor: String(this._lastCursor)}} : this._since ? {since: this._since} : {})
      }
    })
    this._handleId = reply.room
    const early = this._node._early.filter(ev => ev.room === reply.room)
    this._node._early = this._node._early.filter(ev => ev.room !== reply.room)
    for (const ev of early) this._onEvent(ev)
    if (this._wantsMedia) await this._subscribeMedia()
    return this
  }

  _onEvent(ev) {
    if (ev.peerJoin) {
      const p = ev.peerJoin.peer
      if (!this._peers.has(p)) {
        this._peers.add(p)
        this._emit('peer:join', p, PEER_TYPES[ev.peerJoin.type] ?? 'member')
      }
    } else if (ev.peerLeave) {
      const p = ev.peerLeave.peer
      this.mesh._peers.delete(p)
      if (this._peers.delete(p)) {
        this._emit('peer:leave', p)
        // An explicit goodbye, not a lost link or a timeout.
        if (ev.peerLeave.reason === 'leave') this._emit('peer:lost', p)
      }
    } else if (ev.peerSeen) {
      this._emit('peer:seen', ev.peerSeen.peer, PEER_TYPES[ev.peerSeen.type])
    } else if (ev.meshState) {
      const c = ev.meshState
      this.mesh._state = {
        members: c.members ?? 0, cell: c.cell ?? 0, cellCount: c.cellCount ?? 0,
        linksWanted: c.linksWanted ?? 0, bridges: c.bridges ?? 0, ttl: c.ttl ?? 0, records: c.records ?? 0,
        epoch: Number(c.epoch ?? 0), bridge: !!c.bridge, cellSize: c.cellSize ?? 0
      }
      this._emit('mesh:state', this.mesh.getState())
    } else if (ev.meshPeerState) {
      const m = ev.meshPeerState
      const state = {linked: !!m.linked, cell: m.cell ?? 0, bridge: !!m.bridge}
      if (state.linked) this.mesh._peers.set(m.peer, state)
      else this.mesh._peers.delete(m.peer)
      this._emit('mesh:peer-state', m.peer, state)
    } else if (ev.message) {
      const m = ev.message
      const [data, meta] = fromPayload(m.payload)
      const cursor = Number(m.cursor ?? 0)
      if (cursor > this._lastCursor) this._lastCursor = cursor
      const args = [data, m.from, meta, {cursor, history: !!m.history, verified: !!m.verified}]
      const ch = this._channels.get(m.channel)
      if (ch?._listeners.get('message')?.size) ch._emit('message', ...args)
      else this._hold(m.channel, args)
    } else if (ev.progress) {
      const p = ev.progress
      const meta = p.metaJson ? JSON.parse(p.metaJson) : undefined
      this._channels.get(p.channel)?._emit('progress', p.fraction, p.from, meta)
    } else if (ev.request) {
      this._answer(ev.request)
    } else if (ev.undelivered) {
      // Messages lost with a daemon peer's link that did not come back within 30 s.
      const u = ev.undelivered
      const info = {messages: Number(u.messages ?? 0), bytes: Number(u.bytes ?? 0)}
      this._channels.get(u.channel)?._emit('undelivered', u.peer, info)
      this._emit('undelivered', u.channel, u.peer, info)
    } else if (ev.roomError) {
      this._emit('error', ev.roomError)
    } else if (ev.trackAdd) {
      // New metadata for a track already playing: the peer replaced its source.
      const m = ev.trackAdd
      for (const info of this._node._leg?.slots.values() ?? []) {
        if (info.remote && info.room === this._handleId && info.peer === m.peer && info.trackId === m.trackId && (info.metaJson ?? '') !== (m.metaJson ?? '')) {
          info.metaJson = m.metaJson
          this._emit('track:add', info.remote.track, info.remote.stream, info.peer, m.metaJson ? JSON.parse(m.metaJson) : undefined)
        }
      }
    }
  }
}

/** A connection to the local daemon; survives daemon restarts. */
export class Node extends Emitter {
  constructor(url, token) {
    super()
    this.url = url
    this._token = token
    /** @type {string} */
    this.selfId = ''
    /** @type {NodeState} */
    this.state = 'connecting'
    /** @type {Set<Room>} */
    this._rooms = new Set()
    /** Events for a room handle no room holds yet (its join reply is on its way). */
    this._early = []
    this._pending = new Map()
    this._nextId = 1
    this._ws = null
    this._closed = false
    this._backoff = 250
    /** The media leg to the daemon (created on first media use). */
    this._leg = null
    /** Tracks being published, by request id; then published tracks, by track. */
    this._publishing = new Map()
    this._published = new Map()
    /** Requests to peers waiting for their outcomes, by request id. */
    this._asking = new Map()
  }

  /** The page's media leg: the daemon offers, the page answers. */
  _legPc() {
    if (!this._leg) {
      const pc = new RTCPeerConnection({iceServers: []})
      const leg = {pc, slots: new Map(), streams: new Map(), chain: Promise.resolve()}
      pc.ontrack = e => this._onLegTrack(leg, e)
      this._leg = leg
    }
    return this._leg
  }

  _closeLeg() {
    this._leg?.pc.close()
    this._leg = null
    this._publishing.clear()
    this._published.clear()
  }

  _onLegOffer(offer) {
    const leg = this._legPc()
    leg.chain = leg.chain
      .then(() => this._answerLeg(leg, offer))
      .catch(err => console.error('meshrtc: media leg', err))
  }

  async _answerLeg(leg, offer) {
    const {pc} = leg
    const slots = offer.slots ?? []
    for (const slot of slots) {
      if (slot.forward) leg.slots.set(slot.mid, {room: slot.room ?? 0, ...slot.forward})
    }
    await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp})
    for (const slot of slots) {
      if (slot.publishRequest) {
        const pub = this._publishing.get(String(slot.publishRequest))
        this._publishing.delete(String(slot.publishRequest))
        const tr = pc.getTransceivers().find(t => t.mid === slot.mid)
        if (!pub || !tr) continue
        tr.direction = 'sendonly'
        await tr.sender.replaceTrack(pub.track)
        tr.sender.setStreams?.(pub.stream)
        pub.sender = tr.sender
      } else if (slot.removed) {
        const info = leg.slots.get(slot.mid)
        leg.slots.delete(slot.mid)
        if (info?.remote) {
          info.remote.stream.removeTrack(info.remote.track)
          this._roomOf(info.room)?._emit('track:remove', info.remote.track, info.remote.stream, info.peer)
        }
      }
    }
    await pc.setLocalDescription(await pc.createAnswer())
    await new Promise(resolve => {
      if (pc.iceGatheringState === 'complete') return resolve()
      const done = () => pc.iceGatheringState === 'complete' && resolve()
      pc.addEventListener('icegatheringstatechange', done)
      setTimeout(resolve, 1000)
    })
    await this._request({legAnswer: {offer: offer.offer, sdp: pc.localDescription.sdp}})
  }

  _roomOf(handle) {
    return [...this._rooms].find(r => r._handleId === handle)
  }

  _onLegTrack(leg, e) {
    const info = leg.slots.get(e.transceiver.mid)
    const room = info && this._roomOf(info.room)
    if (!room) return
    const key = `${info.peer}\n${info.streamId}`
    let stream = leg.streams.get(key)
    const fresh = !stream
    if (!stream) {
      stream = new MediaStream()
      leg.streams.set(key, stream)
    }
    stream.addTrack(e.track)
    info.remote = {track: e.track, stream}
    const meta = info.metaJson ? JSON.parse(info.metaJson) : undefined
    if (fresh) room._emit('stream:add', stream, info.peer, meta)
    room._emit('track:add', e.track, stream, info.peer, meta)
  }

  _setState(state) {
    if (this.state === state) return
    this.state = state
    this._emit('node', state)
  }

  _open() {
    return new Promise((resolve, reject) => {
      const url = this._token ? `${this.url}?token=${encodeURIComponent(this._token)}` : this.url
      const ws = new WebSocket(url)
      let opened = false
      ws.onopen = () => {
        opened = true
        this._ws = ws
      }
      ws.onmessage = e => {
        let msg
        try {
          msg = JSON.parse(e.data)
        } catch {
          return
        }
        if (msg.hello) {
          this.selfId = msg.hello.selfId
          this._backoff = 250
          this._setState('open')
          resolve()
        } else {
          this._onMessage(msg)
        }
      }
      ws.onclose = () => {
        for (const {reject: rej} of this._pending.values()) rej(new Error('meshrtc: connection closed'))
        this._pending.clear()
        // The daemon that was waiting for the answers is gone: nothing more will arrive.
        for (const asking of this._asking.values()) {
          for (const p of asking.want) settle(asking, p, {status: 'disconnected'})
        }
        this._asking.clear()
        // What this page was sending goes again once the daemon is back (see _reconnect).
        this._republish = [...(this._republish ?? []), ...this._published.values()]
        this._closeLeg()
        this._ws = null
        if (!opened) reject(new Error(`meshrtc: cannot connect to ${this.url}`))
        if (opened && !this._closed) this._reconnect()
      }
    })
  }

  /**
   * The node at a glance: peer id, uptime, relays, rooms, sessions, links, drop counters (the
   * Status call's reply as proto3 JSON). Only a node connected with the API token may ask.
   */
  async status() {
    const reply = await this._request({status: {}})
    return reply.status ?? {}
  }

  /** Peers of any room the node holds, with round trip, security and link path (same rule as status). */
  async roomPeers(appId, roomId) {
    const reply = await this._request({nodePeers: {app: appId, room: roomId}})
    return reply.peers ?? []
  }

  async _reconnect() {
    this._setState('reconnecting')
    for (const room of this._rooms) room._handleId = 0
    while (!this._closed) {
      await new Promise(r => setTimeout(r, this._backoff))
      this._backoff = Math.min(this._backoff * 2, 5000)
      try {
        await this._open()
      } catch {
        continue
      }
      // Rejoin every room; listeners live on the Room objects and stay.
      for (const room of this._rooms) {
        for (const p of room._peers) room._emit('peer:leave', p)
        room._peers.clear()
        room.mesh._reset()
        try {
          await room._join()
        } catch (err) {
          room._emit('error', {code: 'rejoin_failed', message: String(err)})
        }
      }
      // The new daemon knows none of this page's tracks: publish the live ones again, over a
      // new leg, with their targets and meta.
      const published = this._republish ?? []
      this._republish = []
      for (const pub of published) {
        if (pub.track.readyState === 'ended' || pub.room._left) continue
        try {
          await pub.room.addTrack(pub.track, pub.stream, pub.targets, pub.meta)
        } catch (err) {
          pub.room._emit('error', {code: 'republish_failed', message: String(err)})
        }
      }
      return
    }
  }

  _request(body, onId) {
    const ws = this._ws
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('meshrtc: not connected'))
    }
    const requestId = String(this._nextId++)
    onId?.(requestId)
    return new Promise((resolve, reject) => {
      this._pending.set(requestId, {resolve, reject})
      ws.send(JSON.stringify({requestId, ...body}))
    })
  }

  _onMessage(msg) {
    if (msg.reply) {
      const r = msg.reply
      const waiter = this._pending.get(r.requestId ?? '0')
      if (!waiter) return
      this._pending.delete(r.requestId ?? '0')
      if (r.error) {
        const err = new Error(`${r.error.code}: ${r.error.message}`)
        err.code = r.error.code
        waiter.reject(err)
      } else {
        waiter.resolve(r)
      }
    } else if (msg.legOffer) {
      this._onLegOffer(msg.legOffer)
    } else if (msg.event?.response) {
      const r = msg.event.response
      const id = String(r.requestId ?? '0')
      const asking = this._asking.get(id)
      if (!asking) return
      const status = RESPONSE_STATUS[r.status] ?? 'disconnected'
      const [value, meta] = status === 'fulfilled' ? fromPayload(r.payload) : []
      const outcome = status === 'fulfilled' ? {status, value, meta} : status === 'rejected' ? {status, error: r.error ?? ''} : {status}
      if (settle(asking, r.peer ?? '', outcome)) this._asking.delete(id)
    } else if (msg.event) {
      const ev = msg.event
      let routed = false
      for (const room of this._rooms) {
        if (room._handleId === (ev.room ?? 0)) {
          room._onEvent(ev)
          routed = true
        }
      }
      // Events of a join whose reply is still on its way (the peers already there, a replay)
      // wait for the room to learn its handle.
      if (!routed && ev.room) {
        this._early.push(ev)
        if (this._early.length > 10000) this._early.shift()
      }
      if (ev.lagged) this._emit('lagged', Number(ev.lagged.dropped ?? 0))
    }
  }

  /**
   * Joins a room. Options: `password`; `cells: true | {cellSize}` for the cellular overlay
   * (large rooms of meshrtc peers; the first session to join a room decides); `keep: {chat:
   * 10000, files: '7d', log: [500, '12h']}` for channels the node keeps (a count, an age, or
   * both); `since: cursor | 'all' | '10m'` to replay what the node kept first.
   * @returns {Promise<Room>}
   */
  async joinRoom(appId, roomId, {password = '', cells = false, keep = {}, since} = {}) {
    const room = new Room(this, appId, roomId, password)
    if (cells) room._cells = {enabled: true, cellSize: cells === true ? 0 : Number(cells.cellSize ?? 0)}
    room._keep = keepRules(keep)
    room._since = sinceOf(since)
    this._rooms.add(room)
    try {
      return await room._join()
    } catch (err) {
      this._rooms.delete(room)
      throw err
    }
  }

  /** Closes the connection for good. */
  close() {
    this._closed = true
    this._closeLeg()
    this._ws?.close()
    this._setState('closed')
  }
}

/**
 * Connects to the local daemon.
 * @param {{url?: string, token?: string}} [options]
 * @returns {Promise<Node>}
 */
export const connect = async ({url = DEFAULT_URL, token} = {}) => {
  const node = new Node(url, token)
  await node._open()
  return node
}

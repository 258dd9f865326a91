// Types of the meshrtc browser client (meshrtc.js).

/** How many messages (and their bytes as sent) did not reach a peer. */
export interface Undelivered {
  messages: number
  bytes: number
}

export type NodeState = 'connecting' | 'open' | 'reconnecting' | 'closed'
export type PeerId = string
export type Data = string | number | boolean | null | object | ArrayBuffer | ArrayBufferView | Blob
export type Received = string | number | boolean | null | object | Uint8Array

export interface RoomError {
  code: string
  message: string
  peer?: string
}

export class Channel {
  readonly name: string
  /** Sends to all peers, or to `targets`; resolves with the peers it was handed to. */
  send(
    data: Data,
    targets?: PeerId | PeerId[] | null,
    meta?: object,
    onProgress?: (fraction: number, peerId: PeerId, meta?: object) => void
  ): Promise<PeerId[]>
  /** `info.cursor`: the message's place in the node's kept history (0: its channel is not kept);
   *  `info.history`: replayed from that history rather than live; `info.verified`: for history,
   *  the origin's signature was checked. Messages that arrive before a channel's first
   *  `message` listener (a replay right after joining) are held and handed to it. */
  on(event: 'message', cb: (data: Received, peerId: PeerId, meta: object | undefined, info: {cursor: number; history: boolean; verified: boolean}) => void): this
  on(event: 'progress', cb: (fraction: number, peerId: PeerId, meta?: object) => void): this
  /** Messages sent to a daemon peer were lost with its link, and it did not come back in 30 s. */
  on(event: 'undelivered', cb: (peerId: PeerId, info: Undelivered) => void): this
  off(event: 'message' | 'progress' | 'undelivered', cb: (...args: any[]) => void): this
  /** Asks one peer (a request action): resolves with its reply; rejects with a
   *  `RequestError` ('rejected' carries the peer's message, or 'timeout', 'disconnected').
   *  `timeoutMs`: 0 for the daemon's 30 s, at most 600 s. */
  request(data: Data, options: {target: PeerId; timeoutMs?: number; meta?: object}): Promise<Received>
  /** Asks several peers at once; one outcome per distinct target, in the order given. */
  requestMany(data: Data, options: {targets: PeerId | PeerId[]; timeoutMs?: number; meta?: object}): Promise<RequestOutcome[]>
  /** Answers peers' requests on this channel: the handler's result (or what its promise
   *  resolves with) is the reply, what it throws rejects the request; `null` stops (requests
   *  then arrive as plain messages, unanswered). */
  serve(handler: ((data: Received, from: PeerId, meta: object | undefined) => unknown) | null): Promise<void>
}

/** How one target of a request ended. */
export type RequestStatus = 'fulfilled' | 'rejected' | 'timeout' | 'disconnected'

/** One target's outcome of `requestMany`. */
export interface RequestOutcome {
  peerId: PeerId
  status: RequestStatus
  /** The reply (fulfilled). */
  value?: Received
  meta?: object
  /** The peer's error message (rejected). */
  error?: string
}

/** What `request` rejects with when the peer did not answer with a reply. */
export interface RequestError extends Error {
  code: Exclude<RequestStatus, 'fulfilled'>
  peerId: PeerId
}

/** What kind of peer an event names: a member, or a member that keeps channels for peers
 *  catching up (a keeper declares it just after joining: `peer:join` says `member`, then
 *  `peer:seen` says `keeper`). */
export type PeerType = 'member' | 'keeper'

/** Where this node sits in a cells room's overlay. */
export interface MeshState {
  /** Members of the topology in force (this node included). */
  members: number
  cell: number
  cellCount: number
  /** Links the topology asks this node to hold, and how many leave its cell. */
  linksWanted: number
  bridges: number
  /** Hops a frame may take. */
  ttl: number
  /** Members whose signed roster record this node holds. */
  records: number
  /** Topologies this node has put in force in this room (GenosRTC's epoch; 1 for the first). */
  epoch: number
  /** This node holds links out of its cell (a bridge). */
  bridge: boolean
  /** Members per cell the topology aims at. */
  cellSize: number
}

/** A linked member of a cells room: its cell, and whether the link is a bridge link. */
export interface MeshPeerState {
  linked: boolean
  cell: number
  bridge: boolean
}

export class MeshView {
  /** The last topology and the members linked now; null before the first (or without cells). */
  getState(): (MeshState & {peers: Record<PeerId, MeshPeerState>}) | null
}

export class Room {
  readonly appId: string
  readonly roomId: string
  /** The cellular overlay as this node sees it (cells rooms). */
  readonly mesh: MeshView
  on(event: 'peer:join', cb: (peerId: PeerId, type: PeerType) => void): this
  /** Any peer that joined and is gone (`peer:lost` follows when it said goodbye). */
  on(event: 'peer:leave', cb: (peerId: PeerId) => void): this
  /** A joined peer said goodbye (left the room or closed), rather than timing out. */
  on(event: 'peer:lost', cb: (peerId: PeerId) => void): this
  /** Presence on a relay before any link (type undefined), or a joined peer now known as a keeper. */
  on(event: 'peer:seen', cb: (peerId: PeerId, type?: PeerType) => void): this
  /** A cells room's topology changed. */
  on(event: 'mesh:state', cb: (state: MeshState & {peers: Record<PeerId, MeshPeerState>}) => void): this
  /** A link to a member of a cells room came up or went down. */
  on(event: 'mesh:peer-state', cb: (peerId: PeerId, state: MeshPeerState) => void): this
  on(event: 'error', cb: (error: RoomError) => void): this
  /** As the channel's `undelivered`, for every channel of the room. */
  on(event: 'undelivered', cb: (channel: string, peerId: PeerId, info: Undelivered) => void): this
  /** A peer's stream arrived (its first track); listening asks the daemon to forward media. */
  on(event: 'stream:add', cb: (stream: MediaStream, peerId: PeerId, meta?: unknown) => void): this
  /** A peer's track arrived (again, with new metadata, after the peer's replaceTrack). */
  on(event: 'track:add', cb: (track: MediaStreamTrack, stream: MediaStream, peerId: PeerId, meta?: unknown) => void): this
  on(event: 'track:remove', cb: (track: MediaStreamTrack, stream: MediaStream, peerId: PeerId) => void): this
  off(
    event: 'peer:join' | 'peer:leave' | 'peer:lost' | 'peer:seen' | 'mesh:state' | 'mesh:peer-state' | 'error' | 'undelivered' | 'stream:add' | 'track:add' | 'track:remove',
    cb: (...args: any[]) => void
  ): this
  /** Sends every track of a stream (to all peers, or to `targets`) with metadata. */
  addStream(stream: MediaStream, targets?: PeerId | PeerId[] | null, meta?: unknown): Promise<void>
  removeStream(stream: MediaStream): Promise<void>
  /** Resolves once the daemon receives the track's media. */
  addTrack(track: MediaStreamTrack, stream: MediaStream, targets?: PeerId | PeerId[] | null, meta?: unknown): Promise<void>
  removeTrack(track: MediaStreamTrack): Promise<void>
  /** Sends `newTrack` in place of `oldTrack` without renegotiating; peers get `meta`. */
  replaceTrack(oldTrack: MediaStreamTrack, newTrack: MediaStreamTrack, meta?: unknown): Promise<void>
  /** The same Channel object for the same name. */
  channel(name: string): Channel
  getPeers(): Record<PeerId, true>
  /** Round trip in milliseconds. */
  ping(peerId: PeerId): Promise<number>
  leave(): Promise<void>
}

/** A relay as status shows it. */
export interface RelayStatus {
  url: string
  state: 'connected' | 'connecting' | 'disconnected' | 'rate-limited' | 'retired'
  latencyMs?: string
  score?: number
  eventsIn?: string
  eventsOut?: string
  eventsRejected?: string
  lastError?: string
  lastErrorAtMs?: string
}

/** The node's status (StatusReply). */
export interface NodeStatus {
  peerId: string
  version: string
  uptimeMs?: string
  sessions?: number
  links?: number
  pendingDials?: number
  linksRelayed?: number
  relays?: RelayStatus[]
  rooms?: {
    app: string
    room: string
    peers?: PeerId[]
    sessions?: number
    password?: boolean
    e2ePeers?: PeerId[]
    requireE2e?: boolean
    cells?: Partial<MeshState>
  }[]
  /** TURN servers (never their credentials) and what they last said. */
  turn?: {url: string; state: string; relayAddress?: string; error?: string; checkedMsAgo?: string}[]
  /** Named drop counters. */
  drops?: Record<string, string>
}

/** A peer of a room as the node sees it (PeerInfo). */
export interface NodePeer {
  id: PeerId
  rttMs?: number
  connectedMs?: string
  security: 'e2e' | 'transport'
  path?: {
    local?: {type: string; protocol: string; address: string}
    remote?: {type: string; protocol: string; address: string}
    rttMs?: number
    bytesSent?: string
    bytesReceived?: string
  }
  keeps?: string[]
  /** The link's layers and where its bytes wait (what a stalled transfer is diagnosed from). */
  health?: {
    ice?: LayerState
    dtls?: LayerState
    sctp?: LayerState
    channel?: LayerState
    /** Handed to SCTP and not yet acknowledged by the peer. */
    bufferedBytes?: string
    windowBytes?: string
    queuedFrames?: string
    messagesSent?: string
    messagesReceived?: string
    bytesSent?: string
    bytesReceived?: string
  }
}

/** One layer of a link, on one scale for ICE, DTLS, SCTP and the data channel. */
export type LayerState =
  | 'LAYER_STATE_UNKNOWN'
  | 'LAYER_STATE_NEW'
  | 'LAYER_STATE_CONNECTING'
  | 'LAYER_STATE_CONNECTED'
  | 'LAYER_STATE_DISCONNECTED'
  | 'LAYER_STATE_CLOSING'
  | 'LAYER_STATE_CLOSED'
  | 'LAYER_STATE_FAILED'

export class Node {
  readonly url: string
  readonly selfId: string
  readonly state: NodeState
  joinRoom(appId: string, roomId: string, options?: {
    password?: string
    cells?: boolean | {cellSize?: number}
    /** Channels the node keeps: a message count, an age ('7d', '12h', '30m'), or both. */
    keep?: Record<string, number | string | [number, string]>
    /** Replay what the node kept after a cursor, everything ('all'), or an age ('10m'). */
    since?: number | 'all' | string
  }): Promise<Room>
  /** The node at a glance (proto3 JSON of StatusReply: 64-bit counters arrive as strings).
   *  Only a node connected with the API token may ask (`connect({token})`); others get `forbidden`. */
  status(): Promise<NodeStatus>
  /** Peers of any room the node holds (same rule as `status`). */
  roomPeers(appId: string, roomId: string): Promise<NodePeer[]>
  on(event: 'node', cb: (state: NodeState) => void): this
  on(event: 'lagged', cb: (dropped: number) => void): this
  off(event: 'node' | 'lagged', cb: (...args: any[]) => void): this
  close(): void
}

export function connect(options?: {url?: string; token?: string}): Promise<Node>

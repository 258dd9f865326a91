// Types of the meshrtc browser client (meshrtc.js).

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
  off(event: 'message' | 'progress', cb: (...args: any[]) => void): this
}

export class Room {
  readonly appId: string
  readonly roomId: string
  on(event: 'peer:join' | 'peer:leave' | 'peer:seen', cb: (peerId: PeerId) => void): this
  on(event: 'error', cb: (error: RoomError) => void): this
  /** A peer's stream arrived (its first track); listening asks the daemon to forward media. */
  on(event: 'stream:add', cb: (stream: MediaStream, peerId: PeerId, meta?: unknown) => void): this
  /** A peer's track arrived (again, with new metadata, after the peer's replaceTrack). */
  on(event: 'track:add', cb: (track: MediaStreamTrack, stream: MediaStream, peerId: PeerId, meta?: unknown) => void): this
  on(event: 'track:remove', cb: (track: MediaStreamTrack, stream: MediaStream, peerId: PeerId) => void): this
  off(
    event: 'peer:join' | 'peer:leave' | 'peer:seen' | 'error' | 'stream:add' | 'track:add' | 'track:remove',
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
  on(event: 'node', cb: (state: NodeState) => void): this
  on(event: 'lagged', cb: (dropped: number) => void): this
  off(event: 'node' | 'lagged', cb: (...args: any[]) => void): this
  close(): void
}

export function connect(options?: {url?: string; token?: string}): Promise<Node>

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
  on(event: 'message', cb: (data: Received, peerId: PeerId, meta?: object) => void): this
  on(event: 'progress', cb: (fraction: number, peerId: PeerId, meta?: object) => void): this
  off(event: 'message' | 'progress', cb: (...args: any[]) => void): this
}

export class Room {
  readonly appId: string
  readonly roomId: string
  on(event: 'peer:join' | 'peer:leave' | 'peer:seen', cb: (peerId: PeerId) => void): this
  on(event: 'error', cb: (error: RoomError) => void): this
  off(event: 'peer:join' | 'peer:leave' | 'peer:seen' | 'error', cb: (...args: any[]) => void): this
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
  joinRoom(appId: string, roomId: string, options?: {password?: string; cells?: boolean | {cellSize?: number}}): Promise<Room>
  on(event: 'node', cb: (state: NodeState) => void): this
  on(event: 'lagged', cb: (dropped: number) => void): this
  off(event: 'node' | 'lagged', cb: (...args: any[]) => void): this
  close(): void
}

export function connect(options?: {url?: string; token?: string}): Promise<Node>

"""A joined room, its channels, and the events it hears."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable

from . import events as ev
from ._payload import from_payload, keep_rules, since_of, to_payload
from .v1 import meshrtc_pb2 as pb

if TYPE_CHECKING:
    from ._node import Node

_PEER_TYPES = {
    pb.PEER_TYPE_MEMBER: ev.PeerType.MEMBER,
    pb.PEER_TYPE_KEEPER: ev.PeerType.KEEPER,
}
_REASONS = {r.value: r for r in ev.LeaveReason}


class Channel:
    """A named channel of a room (the same object for the same name)."""

    def __init__(self, room: Room, name: str) -> None:
        self.room = room
        self.name = name

    async def send(
        self, data: Any, to: str | Iterable[str] | None = None, meta: Any = None
    ) -> list[str]:
        """Sends to every peer, or to `to` (a peer id or several); returns the peers it was
        handed to. str arrives as str, bytes as bytes (with `meta`), anything else as JSON."""
        targets = [] if to is None else [to] if isinstance(to, str) else list(to)
        reply = await self.room._node._request(
            send=pb.SendRequest(
                room=self.room._handle(),
                channel=self.name,
                payload=to_payload(data, meta),
                targets=targets,
            )
        )
        return list(reply.delivered_to)


class Room:
    """A room this app joined through the node. Events queue from the moment of the join;
    read them with `async for event in room.events()`."""

    def __init__(self, node: Node, app: str, room: str, join: pb.JoinRequest) -> None:
        self._node = node
        self.app = app
        self.id = room
        self._join_request = join
        self._handle_id = 0
        self._left = False
        self._peers: dict[str, ev.PeerJoin] = {}
        self._channels: dict[str, Channel] = {}
        self._events: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self._last_cursor = 0

    def _handle(self) -> int:
        if self._left:
            raise RuntimeError("meshrtc: the room was left")
        if self._handle_id == 0:
            # Between a lost daemon and the rejoin: an old handle could name another room now.
            raise ConnectionError(f"meshrtc: {self.id} is not joined (the daemon is away)")
        return self._handle_id

    def channel(self, name: str) -> Channel:
        """The channel called `name`; names starting with `@_` are reserved."""
        if not isinstance(name, str) or not name or name.startswith("@_"):
            raise ValueError("meshrtc: channel names are non-empty and may not start with @_")
        if name not in self._channels:
            self._channels[name] = Channel(self, name)
        return self._channels[name]

    def peers(self) -> list[str]:
        """The peers joined now."""
        return sorted(self._peers)

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every event of the room, in order, until it is left or the node closes."""
        while True:
            item = await self._events.get()
            if item is None:
                return
            yield item

    async def next_event(self, timeout: float | None = None) -> ev.Event:
        """The next event (raises TimeoutError after `timeout` seconds, EOFError once left)."""
        item = await asyncio.wait_for(self._events.get(), timeout)
        if item is None:
            self._events.put_nowait(None)
            raise EOFError("meshrtc: the room was left")
        return item

    async def ping(self, peer: str) -> float:
        """Round trip to a joined peer, in milliseconds."""
        reply = await self._node._request(
            ping=pb.SessionPingRequest(room=self._handle(), peer=peer)
        )
        return reply.rtt_ms

    async def leave(self) -> None:
        """Leaves the room (peers get a goodbye); its event stream ends."""
        if self._left:
            return
        handle = self._handle()
        self._left = True
        self._node._forget(self)
        try:
            await self._node._request(leave=pb.LeaveRequest(room=handle))
        finally:
            self._events.put_nowait(None)

    async def _join(self) -> None:
        join = pb.JoinRequest()
        join.CopyFrom(self._join_request)
        if self._last_cursor:
            # After a reconnect, resume after the newest kept message seen: nothing is lost.
            join.since.CopyFrom(pb.Since(cursor=self._last_cursor))
        reply = await self._node._request(join=join)
        self._handle_id = reply.room
        self._node._adopt(self)

    def _lost_daemon(self) -> None:
        self._handle_id = 0
        for peer in list(self._peers):
            self._events.put_nowait(ev.PeerLeave(peer, ev.LeaveReason.DAEMON))
        self._peers.clear()

    def _closed(self) -> None:
        self._left = True
        self._events.put_nowait(None)

    def _on_event(self, e: pb.Event) -> None:
        kind = e.WhichOneof("kind")
        out: ev.Event | None = None
        if kind == "peer_join":
            p = e.peer_join
            if p.peer in self._peers:
                return
            security = ev.Security.E2E if p.security == "e2e" else ev.Security.TRANSPORT
            out = ev.PeerJoin(p.peer, security, _PEER_TYPES.get(p.type, ev.PeerType.MEMBER))
            self._peers[p.peer] = out
        elif kind == "peer_leave":
            p = e.peer_leave
            if self._peers.pop(p.peer, None) is None:
                return
            out = ev.PeerLeave(p.peer, _REASONS.get(p.reason, ev.LeaveReason.OTHER))
        elif kind == "peer_seen":
            p = e.peer_seen
            out = ev.PeerSeen(p.peer, _PEER_TYPES.get(p.type, ev.PeerType.UNKNOWN))
        elif kind == "message":
            m = e.message
            sender = getattr(m, "from")  # `from` is a Python keyword
            try:
                data, meta = from_payload(m.payload)
            except ValueError as err:
                text = f"a message from {sender} on {m.channel} is not valid JSON: {err}"
                out = ev.RoomError("malformed_payload", text, sender)
            else:
                self._last_cursor = max(self._last_cursor, m.cursor)
                out = ev.Message(
                    m.channel, sender, data, meta, m.cursor, m.history, m.verified, m.local
                )
        elif kind == "progress":
            p = e.progress
            try:
                meta = from_payload(pb.Payload(meta_json=p.meta_json))[1]
            except ValueError:
                meta = None
            out = ev.Progress(p.channel, getattr(p, "from"), p.fraction, meta)
        elif kind == "room_error":
            r = e.room_error
            out = ev.RoomError(r.code, r.message, r.peer)
        elif kind == "lagged":
            out = ev.Lagged(e.lagged.dropped)
        elif kind == "mesh_state":
            c = e.mesh_state
            out = ev.MeshState(
                c.members, c.cell, c.cell_count, c.links_wanted, c.bridges, c.ttl, c.records
            )
        elif kind == "mesh_peer_state":
            m = e.mesh_peer_state
            out = ev.MeshPeerState(m.peer, m.linked, m.cell, m.bridge)
        # Media events are for apps that stream (the CLI's `media`); this client does not.
        if out is not None:
            self._events.put_nowait(out)


def join_request(
    app: str,
    room: str,
    *,
    password: str | None,
    cells: bool | int,
    keep: dict[str, Any] | None,
    since: int | str | None,
    channels: Iterable[str] | None,
    require_e2e: bool,
    verified_only: bool,
) -> pb.JoinRequest:
    """The JoinRequest for `Node.join_room`'s arguments."""
    join = pb.JoinRequest(
        app=app,
        room=room,
        password=password or "",
        channels=list(channels or []),
        require_e2e=require_e2e,
        verified_only=verified_only,
        keep=keep_rules(keep or {}),
    )
    if cells:
        size = 0 if cells is True else int(cells)
        join.cells.CopyFrom(pb.Cells(enabled=True, cell_size=size))
    s = since_of(since)
    if s is not None:
        join.since.CopyFrom(s)
    return join

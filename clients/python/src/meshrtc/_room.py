"""A joined room, its channels, and the events it hears."""

from __future__ import annotations

import asyncio
import inspect
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Union,
)

from . import events as ev
from ._payload import from_payload, keep_rules, request_payload, since_of, to_payload
from .v1 import meshrtc_pb2 as pb

if TYPE_CHECKING:
    from ._node import Node

_PEER_TYPES = {
    pb.PEER_TYPE_MEMBER: ev.PeerType.MEMBER,
    pb.PEER_TYPE_KEEPER: ev.PeerType.KEEPER,
}
_REASONS = {r.value: r for r in ev.LeaveReason}
_STATUSES = {
    pb.RESPONSE_STATUS_FULFILLED: ev.ResponseStatus.FULFILLED,
    pb.RESPONSE_STATUS_REJECTED: ev.ResponseStatus.REJECTED,
    pb.RESPONSE_STATUS_TIMEOUT: ev.ResponseStatus.TIMEOUT,
    pb.RESPONSE_STATUS_DISCONNECTED: ev.ResponseStatus.DISCONNECTED,
}
# The daemon's deadline when a request names none, and the longest it allows (seconds).
_DEFAULT_TIMEOUT = 30.0
_MAX_TIMEOUT = 600.0
# How long past a request's deadline the client waits for outcomes the daemon owes.
_OUTCOME_MARGIN = 5.0
# What Trystero answers when no handler takes a request.
_NO_HANDLER = "request handler unavailable"

Handler = Callable[[Any, str, Any], Union[Any, Awaitable[Any]]]
"""A request handler: `(data, peer, meta) -> reply`, a plain or an async function."""


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

    async def request(
        self, data: Any, to: str, timeout: float | None = None, meta: Any = None
    ) -> Any:
        """Asks the peer `to` (a peer id) and returns its reply. Raises RequestRejected (with the
        peer's error message), RequestTimeout after `timeout` seconds (default 30, at most 600)
        or RequestDisconnected. `meta`: any JSON value, whatever the data's type."""
        if not isinstance(to, str):
            raise TypeError("meshrtc: request asks one peer (a peer id); see request_many")
        outcomes = await self.request_many(data, to, timeout, meta)
        return outcomes[to].result()

    async def request_many(
        self,
        data: Any,
        to: str | Iterable[str],
        timeout: float | None = None,
        meta: Any = None,
    ) -> dict[str, ev.Response]:
        """Asks every peer of `to` at once; returns each one's Response, by peer in the order
        given, once all have ended (nothing raises for a peer's failure)."""
        targets = list(dict.fromkeys([to] if isinstance(to, str) else to))
        if not targets:
            raise ValueError("meshrtc: a request names at least one peer")
        if timeout is not None and not 0 < timeout <= _MAX_TIMEOUT:
            raise ValueError(f"meshrtc: a request's timeout is in (0, {_MAX_TIMEOUT:.0f}] seconds")
        payload = request_payload(data, meta)
        node = self.room._node
        outcomes = _Outcomes(targets)

        def register(request_id: int) -> None:
            # Before the request is written: outcomes can come before its reply.
            outcomes.request_id = request_id
            node._outcomes[request_id] = outcomes

        try:
            await node._request(
                on_id=register,
                request=pb.PeerRequest(
                    room=self.room._handle(),
                    channel=self.name,
                    payload=payload,
                    targets=targets,
                    timeout_ms=0 if timeout is None else max(1, round(timeout * 1000)),
                ),
            )
            deadline = (_DEFAULT_TIMEOUT if timeout is None else timeout) + _OUTCOME_MARGIN
            return await outcomes.wait(deadline)
        finally:
            node._outcomes.pop(outcomes.request_id, None)

    async def serve(self, handler: Handler | None = None) -> None:
        """Answers peers' requests on this channel (see `Room.serve`)."""
        await self.room.serve(self.name, handler)


class _Outcomes:
    """The outcomes of one request as the daemon reports them, target by target."""

    def __init__(self, targets: list[str]) -> None:
        self.request_id = 0
        self._targets = targets
        self._got: dict[str, ev.Response] = {}
        self._error: Exception | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, r: pb.Response) -> None:
        """A `response` event for this request."""
        if r.peer not in self._targets or r.peer in self._got:
            return
        self._got[r.peer] = response_of(r)
        if len(self._got) == len(self._targets) and not self._done.done():
            self._done.set_result(None)

    def fail(self, err: Exception) -> None:
        """The session ended before every outcome came."""
        if not self._done.done():
            self._error = err
            self._done.set_result(None)

    async def wait(self, limit: float) -> dict[str, ev.Response]:
        """Every target's outcome; one the daemon never reported within `limit` seconds (its
        events were dropped) counts as a timeout."""
        try:
            await asyncio.wait_for(self._done, limit)
        except asyncio.TimeoutError:
            missing = ev.ResponseStatus.TIMEOUT
            for peer in self._targets:
                self._got.setdefault(peer, ev.Response(peer, missing, error="no outcome reported"))
        if self._error is not None:
            raise self._error
        return {peer: self._got[peer] for peer in self._targets}


def response_of(r: pb.Response) -> ev.Response:
    """A `response` event as the client types it."""
    status = _STATUSES.get(r.status, ev.ResponseStatus.UNKNOWN)
    if status != ev.ResponseStatus.FULFILLED:
        return ev.Response(r.peer, status, error=r.error)
    try:
        data, _ = from_payload(r.payload)
    except ValueError as err:
        text = f"the reply is not valid JSON: {err}"
        return ev.Response(r.peer, ev.ResponseStatus.REJECTED, error=text)
    return ev.Response(r.peer, status, data)


class Room:
    """A room this app joined through the node. Events queue from the moment of the join;
    read them with `async for event in room.events()`."""

    def __init__(
        self,
        node: Node,
        app: str,
        room: str,
        join: pb.JoinRequest,
        serve: Mapping[str, Handler | None] | None = None,
    ) -> None:
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
        # Channels whose requests this app answers: with a handler, or as events (None).
        self._serving: dict[str, Handler | None] = {}
        for name, handler in (serve or {}).items():
            self._serving[self.channel(name).name] = handler
        self._handlers: set[asyncio.Task[None]] = set()

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

    async def serve(self, channel: str, handler: Handler | None = None) -> None:
        """Answers peers' requests on `channel` with `handler(data, peer, meta)` (plain or async;
        its return value is the reply, an exception a rejection with its message), or without
        one as IncomingRequest events to answer; replaces the channel's handler."""
        self.channel(channel)
        await self._set_serving(channel, handler, serve=True)

    async def unserve(self, channel: str) -> None:
        """Stops answering requests on `channel` (they then arrive as plain messages)."""
        await self._set_serving(channel, None, serve=False)

    def serving(self) -> list[str]:
        """The channels whose requests this app answers."""
        return sorted(self._serving)

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
        self._stop_handlers()
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
        # Served from the join on (again after a reconnect).
        serving = sorted(self._serving)
        join.serve[:] = serving
        reply = await self._node._request(join=join)
        self._handle_id = reply.room
        self._node._adopt(self)
        if sorted(self._serving) != serving:
            # `serve` was called while the join was on its way.
            await self._node._request(
                serve=pb.ServeRequest(room=self._handle_id, channels=sorted(self._serving))
            )

    async def _set_serving(self, channel: str, handler: Handler | None, serve: bool) -> None:
        if self._left:
            raise RuntimeError("meshrtc: the room was left")
        before = self._serving.copy()
        # Set first: the daemon's first request on the channel may come before its reply does.
        if serve:
            self._serving[channel] = handler
        else:
            self._serving.pop(channel, None)
        if self._handle_id == 0:
            return  # The daemon is away: the rejoin serves what is set now.
        try:
            await self._node._request(
                serve=pb.ServeRequest(room=self._handle_id, channels=sorted(self._serving))
            )
        except Exception:
            if channel in before:
                self._serving[channel] = before[channel]
            else:
                self._serving.pop(channel, None)
            raise

    async def _answer(
        self,
        handle: int,
        request: int,
        *,
        reply: pb.Payload | None = None,
        error: str | None = None,
    ) -> None:
        """Answers the incoming request `request` that came on room handle `handle`."""
        if self._left:
            raise RuntimeError("meshrtc: the room was left")
        if handle != self._handle_id:
            raise ConnectionError("meshrtc: the request was lost with the daemon's session")
        if error is not None:
            respond = pb.RespondRequest(room=handle, id=request, error=error)
        else:
            respond = pb.RespondRequest(room=handle, id=request, reply=reply)
        await self._node._request(respond=respond)

    async def _handle_request(self, handler: Handler, req: ev.IncomingRequest) -> None:
        """Runs `handler` for a request and answers with what it returns or raises."""
        reply: pb.Payload | None = None
        error: str | None = None
        try:
            result = handler(req.data, req.peer, req.meta)
            if inspect.isawaitable(result):
                result = await result
            reply = to_payload(result)  # A reply that cannot go out is the handler's error.
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the requester hears of any failure
            error = str(err) or type(err).__name__
        try:
            await self._answer(req._handle, req.id, reply=reply, error=error)
        except Exception as err:  # noqa: BLE001 - expired, peer gone, daemon gone: the app hears
            self._events.put_nowait(ev.RoomError("respond_failed", str(err), req.peer))

    async def _refuse(self, handle: int, request: int, error: str) -> None:
        """Rejects a request this app cannot take (nobody to tell if that fails too)."""
        try:
            await self._answer(handle, request, error=error)
        except Exception:  # noqa: BLE001 - expired or the daemon is gone: nothing is owed
            pass

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _stop_handlers(self) -> None:
        for task in list(self._handlers):
            task.cancel()
        self._handlers.clear()

    def _lost_daemon(self) -> None:
        self._handle_id = 0
        # What handlers were answering went with the session: the daemon answered for them.
        self._stop_handlers()
        for peer in list(self._peers):
            self._events.put_nowait(ev.PeerLeave(peer, ev.LeaveReason.DAEMON))
        self._peers.clear()

    def _closed(self) -> None:
        self._left = True
        self._stop_handlers()
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
        elif kind == "undelivered":
            u = e.undelivered
            out = ev.Undelivered(u.peer, u.channel, u.messages, u.bytes)
        elif kind == "mesh_state":
            c = e.mesh_state
            out = ev.MeshState(
                c.members, c.cell, c.cell_count, c.links_wanted, c.bridges, c.ttl, c.records
            )
        elif kind == "mesh_peer_state":
            m = e.mesh_peer_state
            out = ev.MeshPeerState(m.peer, m.linked, m.cell, m.bridge)
        elif kind == "request":
            out = self._on_request(e.room, e.request)
        # Media events are for apps that stream (the CLI's `media`); this client does not.
        if out is not None:
            self._events.put_nowait(out)


    def _on_request(self, handle: int, r: pb.IncomingRequest) -> ev.Event | None:
        """A peer's request: to its channel's handler, or an event for the app to answer."""
        sender = getattr(r, "from")  # `from` is a Python keyword
        try:
            data, meta = from_payload(r.payload)
        except ValueError as err:
            text = f"a request from {sender} on {r.channel} is not valid JSON: {err}"
            self._spawn(self._refuse(handle, r.id, text))
            return ev.RoomError("malformed_payload", text, sender)
        if r.channel not in self._serving:
            # Served no more (the daemon asked before it heard): answer as Trystero does.
            self._spawn(self._refuse(handle, r.id, _NO_HANDLER))
            return None
        req = ev.IncomingRequest(r.channel, sender, data, meta, r.id, self, handle)
        handler = self._serving[r.channel]
        if handler is None:
            return req
        self._spawn(self._handle_request(handler, req))
        return None


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

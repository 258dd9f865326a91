"""The connection to meshrtcd: one gRPC session carrying requests, replies and room events,
reopened (and every room rejoined) when the daemon restarts."""

from __future__ import annotations

import asyncio
import enum
import os
import pathlib
from typing import Any, Callable, Iterable, Mapping

import grpc

from ._room import Handler, Room, _Outcomes, join_request
from .events import RoomError
from .v1 import meshrtc_pb2 as pb
from .v1.meshrtc_pb2_grpc import NodeStub

_MAX_MESSAGE = 80 << 20
_START_HINT = "start it with `meshrtcd` (or `systemctl --user start meshrtcd`)"


class NodeState(str, enum.Enum):
    """Where the connection to the daemon is."""

    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class MeshrtcError(Exception):
    """The daemon refused a request: a stable `code` and a human message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def default_daemon() -> str:
    """The CLI's default endpoint: unix:$XDG_STATE_HOME/meshrtc/meshrtcd.sock (or ~/.local/state)."""
    state = os.environ.get("XDG_STATE_HOME")
    base = pathlib.Path(state) if state else pathlib.Path.home() / ".local" / "state"
    return f"unix:{base / 'meshrtc' / 'meshrtcd.sock'}"


async def connect(
    daemon: str | None = None, *, token: str | None = None, timeout: float = 5.0
) -> Node:
    """Connects to the daemon at `unix:PATH` or `HOST:PORT` (TCP needs the API token unless
    this runs as the daemon's own account; env MESHRTC_DAEMON and MESHRTC_TOKEN are the
    defaults)."""
    node = Node(
        daemon or os.environ.get("MESHRTC_DAEMON") or default_daemon(),
        token or os.environ.get("MESHRTC_TOKEN"),
    )
    await node._open(timeout)
    return node


class Node:
    """The daemon this app shares with every other app of the machine."""

    def __init__(self, daemon: str, token: str | None) -> None:
        self.daemon = daemon
        self.self_id = ""
        self.version = ""
        self.state = NodeState.RECONNECTING
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel: grpc.aio.Channel | None = None
        self._stub: NodeStub | None = None
        self._call: Any = None
        self._write_lock = asyncio.Lock()
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[pb.Reply]] = {}
        # Requests to peers whose outcomes are still to come, by request id.
        self._outcomes: dict[int, _Outcomes] = {}
        self._rooms: list[Room] = []
        self._by_handle: dict[int, Room] = {}
        # Events that arrive before their join's reply names the room's handle.
        self._early: list[pb.Event] = []
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self._state_changed = asyncio.Condition()

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def status(self) -> pb.StatusReply:
        """The node at a glance: peer id, relays, rooms, links, drop counters."""
        return await self._unary().Status(pb.StatusRequest(), metadata=self._metadata)

    async def history(self, app: str, room: str, password: str = "") -> pb.HistoryReply:
        """What the node keeps of a room: messages and bytes, per channel and in all."""
        request = pb.HistoryRequest(app=app, room=room, password=password)
        return await self._unary().History(request, metadata=self._metadata)

    async def join_room(
        self,
        app: str,
        room: str,
        *,
        password: str | None = None,
        cells: bool | int = False,
        keep: dict[str, Any] | None = None,
        since: int | str | None = None,
        channels: Iterable[str] | None = None,
        require_e2e: bool = False,
        verified_only: bool = False,
        serve: Mapping[str, Handler | None] | None = None,
    ) -> Room:
        """Joins a room. `cells`: True (or a cell size) for the cellular overlay; `keep`:
        {'chat': 10000, 'files': '7d'} kept channels; `since`: a cursor, 'all' or '10m' to
        replay what was kept; `channels`: receive only these; `serve`: {channel: handler or
        None} answered from the join on (see `Room.serve`)."""
        join = join_request(
            app,
            room,
            password=password,
            cells=cells,
            keep=keep,
            since=since,
            channels=channels,
            require_e2e=require_e2e,
            verified_only=verified_only,
        )
        r = Room(self, app, room, join, serve)
        await r._join()
        self._rooms.append(r)
        return r

    async def wait_state(self, state: NodeState, timeout: float | None = None) -> None:
        """Waits until the connection is in `state`."""

        async def reached() -> None:
            async with self._state_changed:
                await self._state_changed.wait_for(lambda: self.state == state)

        await asyncio.wait_for(reached(), timeout)

    async def close(self) -> None:
        """Ends the session (the daemon leaves rooms no other app holds) and every room's events."""
        if self._closed:
            return
        self._closed = True
        for task in (self._reconnecting, self._reader):
            if task is not None:
                task.cancel()
        self._fail_pending(ConnectionError("meshrtc: the node was closed"))
        for r in self._rooms:
            r._closed()
        if self._channel is not None:
            await self._channel.close()
        await self._set_state(NodeState.CLOSED)

    # The session.

    def _unary(self) -> NodeStub:
        if self._stub is None:
            raise ConnectionError(f"meshrtc: not connected to {self.daemon}")
        return self._stub

    async def _open(self, timeout: float) -> None:
        """Opens a channel and a session and reads its hello."""
        if self._channel is not None:
            await self._channel.close()
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ]
        if self.daemon.startswith("unix:"):
            # grpc-core would send the socket path as :authority, which the daemon's HTTP/2
            # server refuses as malformed.
            options.append(("grpc.default_authority", "localhost"))
        channel = grpc.aio.insecure_channel(self.daemon, options=options)
        self._channel = channel
        self._stub = NodeStub(channel)
        call = self._stub.Session(metadata=self._metadata)
        try:
            first = await asyncio.wait_for(call.read(), timeout)
        except (grpc.aio.AioRpcError, asyncio.TimeoutError) as err:
            call.cancel()
            await channel.close()
            self._channel = None
            raise ConnectionError(_unreachable(self.daemon, err)) from None
        if first is grpc.aio.EOF or first.WhichOneof("body") != "hello":
            call.cancel()
            await channel.close()
            self._channel = None
            raise ConnectionError(f"meshrtc: {self.daemon} did not greet with hello")
        self.self_id = first.hello.self_id
        self.version = first.hello.version
        self._call = call
        self._reader = asyncio.get_running_loop().create_task(self._read(call))
        await self._set_state(NodeState.OPEN)

    async def _request(
        self, on_id: Callable[[int], None] | None = None, **body: Any
    ) -> pb.Reply:
        """Sends a request and waits for its reply; `on_id` learns its id before it is sent."""
        call = self._call
        if call is None or self.state != NodeState.OPEN:
            raise ConnectionError(f"meshrtc: not connected to {self.daemon}")
        request_id = self._next_id
        self._next_id += 1
        if on_id is not None:
            on_id(request_id)
        future: asyncio.Future[pb.Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            async with self._write_lock:
                await call.write(pb.ClientMessage(request_id=request_id, **body))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            self._pending.pop(request_id, None)
            raise ConnectionError(f"meshrtc: the daemon went away ({err})") from None
        reply = await future
        if reply.HasField("error") and reply.error.code:
            raise MeshrtcError(reply.error.code, reply.error.message)
        return reply

    async def _read(self, call: Any) -> None:
        try:
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    break
                body = msg.WhichOneof("body")
                if body == "reply":
                    future = self._pending.pop(msg.reply.request_id, None)
                    if future is not None and not future.done():
                        future.set_result(msg.reply)
                elif body == "event":
                    self._dispatch(msg.event)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - whatever ended the stream, the session is gone
            pass
        if not self._closed and self._call is call:
            self._lost()

    def _dispatch(self, e: pb.Event) -> None:
        kind = e.WhichOneof("kind")
        if kind == "response":
            # Outcomes go to the request that waits for them, whatever the room.
            outcomes = self._outcomes.get(e.response.request_id)
            if outcomes is not None:
                outcomes.add(e.response)
            return
        if kind == "lagged":
            for r in self._rooms:
                r._on_event(e)
            return
        room = self._by_handle.get(e.room)
        if room is None:
            self._early.append(e)
            del self._early[:-10_000]
            return
        room._on_event(e)

    def _adopt(self, room: Room) -> None:
        """A join's reply named the room's handle: it takes the events that came before."""
        self._by_handle[room._handle_id] = room
        early = [e for e in self._early if e.room == room._handle_id]
        self._early = [e for e in self._early if e.room != room._handle_id]
        for e in early:
            room._on_event(e)

    def _forget(self, room: Room) -> None:
        self._by_handle.pop(room._handle_id, None)
        if room in self._rooms:
            self._rooms.remove(room)

    # Reconnection.

    def _fail_pending(self, err: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(err)
        self._pending.clear()
        # Requests to peers end with the session that carried them.
        for outcomes in self._outcomes.values():
            outcomes.fail(err)
        self._outcomes.clear()

    def _lost(self) -> None:
        self._call = None
        self._fail_pending(ConnectionError("meshrtc: the daemon went away"))
        self._by_handle.clear()
        self._early.clear()
        for r in self._rooms:
            r._lost_daemon()
        # One reconnect loop at a time: a session lost while rooms rejoin is seen by that loop.
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        backoff = 0.1
        while not self._closed:
            await self._set_state(NodeState.RECONNECTING)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            try:
                await self._open(timeout=2.0)
            except ConnectionError:
                continue
            call = self._call
            # Rooms keep their objects (and their readers); each is joined again.
            for r in list(self._rooms):
                try:
                    await r._join()
                except (MeshrtcError, ConnectionError) as err:
                    if self._call is not call:
                        break
                    r._events.put_nowait(RoomError("rejoin_failed", str(err)))
            if self._call is call:
                return
            # The new session was lost too while rooms rejoined: start over.

    async def _set_state(self, state: NodeState) -> None:
        async with self._state_changed:
            self.state = state
            self._state_changed.notify_all()


def _unreachable(daemon: str, err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        if err.code() == grpc.StatusCode.UNAUTHENTICATED:
            return f"meshrtc: {daemon} refused the token ({err.details()})"
        return f"meshrtc: the daemon at {daemon} does not answer ({err.details()}); {_START_HINT}"
    return f"meshrtc: the daemon at {daemon} did not answer in time; {_START_HINT}"

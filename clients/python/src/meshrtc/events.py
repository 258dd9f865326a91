"""Typed events of a room, as `Room.events()` yields them, and the outcomes of requests."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from ._payload import to_payload

if TYPE_CHECKING:
    from ._room import Room


class Security(str, enum.Enum):
    """How a joined peer's payloads are protected."""

    E2E = "e2e"
    """Sealed end to end with the room password's key (meshrtc peers in password rooms)."""
    TRANSPORT = "transport"
    """DTLS only (open rooms, or a Trystero page)."""


class PeerType(str, enum.Enum):
    """What kind of peer an event names, as far as the node knows."""

    UNKNOWN = "unknown"
    """Only seen announcing on a relay."""
    MEMBER = "member"
    """A member of the room."""
    KEEPER = "keeper"
    """A member that keeps channels of the room and serves them to peers catching up."""


class LeaveReason(str, enum.Enum):
    """Why a peer left."""

    LEAVE = "leave"
    """It said goodbye (left the room or shut down)."""
    LINK = "link"
    """Its link closed or failed."""
    TIMEOUT = "timeout"
    """It went silent."""
    PASSWORD = "password"
    """It failed the room's password handshake."""
    DAEMON = "daemon"
    """This client lost its daemon; the room is rejoined when the daemon is back."""
    OTHER = "other"
    """A reason this client does not know (a newer daemon)."""


class ResponseStatus(str, enum.Enum):
    """How one target of a request ended."""

    FULFILLED = "fulfilled"
    """The peer answered: `data`."""
    REJECTED = "rejected"
    """The peer's handler failed: `error`."""
    TIMEOUT = "timeout"
    """No answer before the deadline."""
    DISCONNECTED = "disconnected"
    """The peer was not in the room, or left before answering."""
    UNKNOWN = "unknown"
    """A status this client does not know (a newer daemon)."""


@dataclass(frozen=True)
class PeerJoin:
    """A peer completed the handshake."""

    peer: str
    security: Security
    type: PeerType


@dataclass(frozen=True)
class PeerLeave:
    """A joined peer is gone."""

    peer: str
    reason: LeaveReason


@dataclass(frozen=True)
class PeerSeen:
    """A peer announced itself on a relay (type UNKNOWN), or a joined peer declared it keeps
    channels (type KEEPER)."""

    peer: str
    type: PeerType


@dataclass(frozen=True)
class Message:
    """A channel message. `data` is a str, a JSON value, or bytes (with `meta`)."""

    channel: str
    peer: str
    data: Any
    meta: Any = None
    cursor: int = 0
    """Its place in the node's kept history (0: the channel is not kept)."""
    history: bool = False
    """Replayed from the node's history rather than live."""
    verified: bool = False
    """For history: the origin's signature was checked."""
    local: bool = False
    """Sent by another app on this node."""


@dataclass(frozen=True)
class Progress:
    """Receive progress of a large (chunked) message."""

    channel: str
    peer: str
    fraction: float
    meta: Any = None


@dataclass(frozen=True)
class RoomError:
    """A room-level problem (a wrong password, a peer refused, a failed rejoin)."""

    code: str
    message: str
    peer: str = ""


@dataclass(frozen=True)
class IncomingRequest:
    """A peer's request on a channel this app serves without a handler: answer it once, with
    `respond` or `reject` (the peer times out otherwise)."""

    channel: str
    peer: str
    data: Any
    meta: Any = None
    """The requester's metadata (any JSON value, or None)."""
    id: int = 0
    """The daemon's id of it."""
    _room: Room | None = field(default=None, repr=False, compare=False)
    _handle: int = field(default=0, repr=False, compare=False)

    async def respond(self, reply: Any) -> None:
        """Answers with `reply` (str, bytes or a JSON value): the requester's call returns it."""
        await self._owner()._answer(self._handle, self.id, reply=to_payload(reply))

    async def reject(self, message: str) -> None:
        """Answers with an error: the requester's call raises RequestRejected with `message`."""
        await self._owner()._answer(self._handle, self.id, error=message)

    def _owner(self) -> Room:
        if self._room is None:
            raise RuntimeError("meshrtc: this request did not come from a room")
        return self._room


@dataclass(frozen=True)
class Lagged:
    """The daemon dropped this many events because the app did not read fast enough."""

    dropped: int


@dataclass(frozen=True)
class Undelivered:
    """Messages this app sent `peer` on `channel` were lost with its link, and the peer did not
    come back within 30 s to receive them again."""

    peer: str
    channel: str
    messages: int
    bytes: int


@dataclass(frozen=True)
class MeshState:
    """A cells room's topology changed: where this node now sits."""

    members: int
    cell: int
    cell_count: int
    links_wanted: int
    bridges: int
    ttl: int
    records: int


@dataclass(frozen=True)
class MeshPeerState:
    """A cells room: the link to a member came up or went down."""

    peer: str
    linked: bool
    cell: int
    bridge: bool


Event = Union[
    PeerJoin,
    PeerLeave,
    PeerSeen,
    Message,
    Progress,
    RoomError,
    IncomingRequest,
    Lagged,
    Undelivered,
    MeshState,
    MeshPeerState,
]
"""Anything `Room.events()` yields."""


class RequestError(Exception):
    """A request's target did not fulfil it: `peer`, `status` and the peer's `error`, if any."""

    def __init__(self, peer: str, status: ResponseStatus, error: str = "") -> None:
        what = _SAYS.get(status, "ended with a status this client does not know")
        detail = f": {error}" if error else ""
        super().__init__(f"meshrtc: {peer} {what}{detail}")
        self.peer = peer
        self.status = status
        self.error = error


class RequestRejected(RequestError):
    """The peer's handler failed; `error` is its message."""


class RequestTimeout(RequestError, TimeoutError):
    """The peer did not answer before the deadline."""


class RequestDisconnected(RequestError):
    """The peer was not in the room, or left before answering."""


_SAYS = {
    ResponseStatus.REJECTED: "rejected the request",
    ResponseStatus.TIMEOUT: "did not answer before the deadline",
    ResponseStatus.DISCONNECTED: "is not in the room or left before answering",
}
_RAISES = {
    ResponseStatus.REJECTED: RequestRejected,
    ResponseStatus.TIMEOUT: RequestTimeout,
    ResponseStatus.DISCONNECTED: RequestDisconnected,
}


@dataclass(frozen=True)
class Response:
    """One target's outcome of a request, as `Channel.request_many` returns them."""

    peer: str
    status: ResponseStatus
    data: Any = None
    """The reply (FULFILLED): a str, a JSON value, or bytes."""
    error: str = ""
    """The peer's error message (REJECTED), or what went wrong."""

    @property
    def ok(self) -> bool:
        """The peer answered."""
        return self.status == ResponseStatus.FULFILLED

    def result(self) -> Any:
        """The reply, or raises RequestRejected, RequestTimeout or RequestDisconnected."""
        if self.ok:
            return self.data
        raise _RAISES.get(self.status, RequestError)(self.peer, self.status, self.error)

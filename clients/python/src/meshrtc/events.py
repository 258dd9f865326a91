"""Typed events of a room, as `Room.events()` yields them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Union


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
class Lagged:
    """The daemon dropped this many events because the app did not read fast enough."""

    dropped: int


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
    PeerJoin, PeerLeave, PeerSeen, Message, Progress, RoomError, Lagged, MeshState, MeshPeerState
]
"""Anything `Room.events()` yields."""

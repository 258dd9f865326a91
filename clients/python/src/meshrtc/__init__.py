"""meshrtc: rooms, channels and events of meshrtcd, the machine's shared peer-to-peer node.

    node = await meshrtc.connect()
    room = await node.join_room("my-app", "lobby")
    await room.channel("chat").send("hello")
    await room.serve("add", lambda data, peer, meta: data["a"] + data["b"])
    total = await room.channel("add").request({"a": 1, "b": 2}, to=peer_id)
    async for event in room.events():
        ...
"""

from ._node import MeshrtcError, Node, NodeState, connect, default_daemon
from ._room import Channel, Handler, Room
from .events import (
    Event,
    IncomingRequest,
    Lagged,
    Undelivered,
    LeaveReason,
    MeshPeerState,
    MeshState,
    Message,
    PeerJoin,
    PeerLeave,
    PeerSeen,
    PeerType,
    Progress,
    RequestDisconnected,
    RequestError,
    RequestRejected,
    RequestTimeout,
    Response,
    ResponseStatus,
    RoomError,
    Security,
)

__all__ = [
    "Channel",
    "Event",
    "Handler",
    "IncomingRequest",
    "Lagged",
    "Undelivered",
    "LeaveReason",
    "MeshPeerState",
    "MeshState",
    "MeshrtcError",
    "Message",
    "Node",
    "NodeState",
    "PeerJoin",
    "PeerLeave",
    "PeerSeen",
    "PeerType",
    "Progress",
    "RequestDisconnected",
    "RequestError",
    "RequestRejected",
    "RequestTimeout",
    "Response",
    "ResponseStatus",
    "Room",
    "RoomError",
    "Security",
    "connect",
    "default_daemon",
]

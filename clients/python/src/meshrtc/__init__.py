"""meshrtc: rooms, channels and events of meshrtcd, the machine's shared peer-to-peer node.

    node = await meshrtc.connect()
    room = await node.join_room("my-app", "lobby")
    await room.channel("chat").send("hello")
    async for event in room.events():
        ...
"""

from ._node import MeshrtcError, Node, NodeState, connect, default_daemon
from ._room import Channel, Room
from .events import (
    Event,
    Lagged,
    LeaveReason,
    MeshPeerState,
    MeshState,
    Message,
    PeerJoin,
    PeerLeave,
    PeerSeen,
    PeerType,
    Progress,
    RoomError,
    Security,
)

__all__ = [
    "Channel",
    "Event",
    "Lagged",
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
    "Room",
    "RoomError",
    "Security",
    "connect",
    "default_daemon",
]

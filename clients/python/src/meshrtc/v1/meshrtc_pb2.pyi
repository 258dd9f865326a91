from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_STATUS_UNSPECIFIED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_FULFILLED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_REJECTED: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_TIMEOUT: _ClassVar[ResponseStatus]
    RESPONSE_STATUS_DISCONNECTED: _ClassVar[ResponseStatus]

class PeerType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEER_TYPE_UNSPECIFIED: _ClassVar[PeerType]
    PEER_TYPE_MEMBER: _ClassVar[PeerType]
    PEER_TYPE_KEEPER: _ClassVar[PeerType]

class LayerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_STATE_UNKNOWN: _ClassVar[LayerState]
    LAYER_STATE_NEW: _ClassVar[LayerState]
    LAYER_STATE_CONNECTING: _ClassVar[LayerState]
    LAYER_STATE_CONNECTED: _ClassVar[LayerState]
    LAYER_STATE_DISCONNECTED: _ClassVar[LayerState]
    LAYER_STATE_CLOSING: _ClassVar[LayerState]
    LAYER_STATE_CLOSED: _ClassVar[LayerState]
    LAYER_STATE_FAILED: _ClassVar[LayerState]
RESPONSE_STATUS_UNSPECIFIED: ResponseStatus
RESPONSE_STATUS_FULFILLED: ResponseStatus
RESPONSE_STATUS_REJECTED: ResponseStatus
RESPONSE_STATUS_TIMEOUT: ResponseStatus
RESPONSE_STATUS_DISCONNECTED: ResponseStatus
PEER_TYPE_UNSPECIFIED: PeerType
PEER_TYPE_MEMBER: PeerType
PEER_TYPE_KEEPER: PeerType
LAYER_STATE_UNKNOWN: LayerState
LAYER_STATE_NEW: LayerState
LAYER_STATE_CONNECTING: LayerState
LAYER_STATE_CONNECTED: LayerState
LAYER_STATE_DISCONNECTED: LayerState
LAYER_STATE_CLOSING: LayerState
LAYER_STATE_CLOSED: LayerState
LAYER_STATE_FAILED: LayerState

class ClientMessage(_message.Message):
    __slots__ = ("request_id", "join", "leave", "send", "subscribe", "ping", "peers", "add_track", "remove_track", "keyframe", "replace_track", "leg_publish", "leg_subscribe", "leg_answer", "status", "node_peers", "request", "respond", "serve")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ADD_TRACK_FIELD_NUMBER: _ClassVar[int]
    REMOVE_TRACK_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    REPLACE_TRACK_FIELD_NUMBER: _ClassVar[int]
    LEG_PUBLISH_FIELD_NUMBER: _ClassVar[int]
    LEG_SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    LEG_ANSWER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NODE_PEERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPOND_FIELD_NUMBER: _ClassVar[int]
    SERVE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    join: JoinRequest
    leave: LeaveRequest
    send: SendRequest
    subscribe: SubscribeRequest
    ping: SessionPingRequest
    peers: SessionPeersRequest
    add_track: AddTrackRequest
    remove_track: RemoveTrackRequest
    keyframe: KeyframeRequest
    replace_track: ReplaceTrackRequest
    leg_publish: LegPublishRequest
    leg_subscribe: LegSubscribeRequest
    leg_answer: LegAnswerRequest
    status: StatusRequest
    node_peers: PeersRequest
    request: PeerRequest
    respond: RespondRequest
    serve: ServeRequest
    def __init__(self, request_id: _Optional[int] = ..., join: _Optional[_Union[JoinRequest, _Mapping]] = ..., leave: _Optional[_Union[LeaveRequest, _Mapping]] = ..., send: _Optional[_Union[SendRequest, _Mapping]] = ..., subscribe: _Optional[_Union[SubscribeRequest, _Mapping]] = ..., ping: _Optional[_Union[SessionPingRequest, _Mapping]] = ..., peers: _Optional[_Union[SessionPeersRequest, _Mapping]] = ..., add_track: _Optional[_Union[AddTrackRequest, _Mapping]] = ..., remove_track: _Optional[_Union[RemoveTrackRequest, _Mapping]] = ..., keyframe: _Optional[_Union[KeyframeRequest, _Mapping]] = ..., replace_track: _Optional[_Union[ReplaceTrackRequest, _Mapping]] = ..., leg_publish: _Optional[_Union[LegPublishRequest, _Mapping]] = ..., leg_subscribe: _Optional[_Union[LegSubscribeRequest, _Mapping]] = ..., leg_answer: _Optional[_Union[LegAnswerRequest, _Mapping]] = ..., status: _Optional[_Union[StatusRequest, _Mapping]] = ..., node_peers: _Optional[_Union[PeersRequest, _Mapping]] = ..., request: _Optional[_Union[PeerRequest, _Mapping]] = ..., respond: _Optional[_Union[RespondRequest, _Mapping]] = ..., serve: _Optional[_Union[ServeRequest, _Mapping]] = ...) -> None: ...

class PeerRequest(_message.Message):
    __slots__ = ("room", "channel", "payload", "targets", "timeout_ms")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    room: int
    channel: str
    payload: Payload
    targets: _containers.RepeatedScalarFieldContainer[str]
    timeout_ms: int
    def __init__(self, room: _Optional[int] = ..., channel: _Optional[str] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., targets: _Optional[_Iterable[str]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class RespondRequest(_message.Message):
    __slots__ = ("room", "id", "reply", "error")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    room: int
    id: int
    reply: Payload
    error: str
    def __init__(self, room: _Optional[int] = ..., id: _Optional[int] = ..., reply: _Optional[_Union[Payload, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class ServeRequest(_message.Message):
    __slots__ = ("room", "channels")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    room: int
    channels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, room: _Optional[int] = ..., channels: _Optional[_Iterable[str]] = ...) -> None: ...

class AddTrackRequest(_message.Message):
    __slots__ = ("room", "codec", "stream_id", "track_id", "targets", "meta_json", "max_kbps")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_KBPS_FIELD_NUMBER: _ClassVar[int]
    room: int
    codec: str
    stream_id: str
    track_id: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    meta_json: str
    max_kbps: int
    def __init__(self, room: _Optional[int] = ..., codec: _Optional[str] = ..., stream_id: _Optional[str] = ..., track_id: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., meta_json: _Optional[str] = ..., max_kbps: _Optional[int] = ...) -> None: ...

class ReplaceTrackRequest(_message.Message):
    __slots__ = ("track", "meta_json")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    track: int
    meta_json: str
    def __init__(self, track: _Optional[int] = ..., meta_json: _Optional[str] = ...) -> None: ...

class LegPublishRequest(_message.Message):
    __slots__ = ("room", "kind", "stream_id", "track_id", "targets", "meta_json", "max_kbps")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_KBPS_FIELD_NUMBER: _ClassVar[int]
    room: int
    kind: str
    stream_id: str
    track_id: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    meta_json: str
    max_kbps: int
    def __init__(self, room: _Optional[int] = ..., kind: _Optional[str] = ..., stream_id: _Optional[str] = ..., track_id: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ..., meta_json: _Optional[str] = ..., max_kbps: _Optional[int] = ...) -> None: ...

class LegSubscribeRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: int
    def __init__(self, room: _Optional[int] = ...) -> None: ...

class LegAnswerRequest(_message.Message):
    __slots__ = ("offer", "sdp")
    OFFER_FIELD_NUMBER: _ClassVar[int]
    SDP_FIELD_NUMBER: _ClassVar[int]
    offer: int
    sdp: str
    def __init__(self, offer: _Optional[int] = ..., sdp: _Optional[str] = ...) -> None: ...

class LegOffer(_message.Message):
    __slots__ = ("offer", "sdp", "slots")
    OFFER_FIELD_NUMBER: _ClassVar[int]
    SDP_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    offer: int
    sdp: str
    slots: _containers.RepeatedCompositeFieldContainer[LegSlot]
    def __init__(self, offer: _Optional[int] = ..., sdp: _Optional[str] = ..., slots: _Optional[_Iterable[_Union[LegSlot, _Mapping]]] = ...) -> None: ...

class LegSlot(_message.Message):
    __slots__ = ("mid", "publish_request", "forward", "room", "removed")
    MID_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_REQUEST_FIELD_NUMBER: _ClassVar[int]
    FORWARD_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    mid: str
    publish_request: int
    forward: MediaEvent
    room: int
    removed: bool
    def __init__(self, mid: _Optional[str] = ..., publish_request: _Optional[int] = ..., forward: _Optional[_Union[MediaEvent, _Mapping]] = ..., room: _Optional[int] = ..., removed: _Optional[bool] = ...) -> None: ...

class RemoveTrackRequest(_message.Message):
    __slots__ = ("track",)
    TRACK_FIELD_NUMBER: _ClassVar[int]
    track: int
    def __init__(self, track: _Optional[int] = ...) -> None: ...

class KeyframeRequest(_message.Message):
    __slots__ = ("room", "peer", "track_id")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    room: int
    peer: str
    track_id: str
    def __init__(self, room: _Optional[int] = ..., peer: _Optional[str] = ..., track_id: _Optional[str] = ...) -> None: ...

class MediaWrite(_message.Message):
    __slots__ = ("track", "rtp", "sample")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    RTP_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    track: int
    rtp: bytes
    sample: Sample
    def __init__(self, track: _Optional[int] = ..., rtp: _Optional[bytes] = ..., sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("payload", "duration_us")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    duration_us: int
    def __init__(self, payload: _Optional[bytes] = ..., duration_us: _Optional[int] = ...) -> None: ...

class MediaWriteSummary(_message.Message):
    __slots__ = ("packets", "refused")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    packets: int
    refused: int
    def __init__(self, packets: _Optional[int] = ..., refused: _Optional[int] = ...) -> None: ...

class ReadTrackRequest(_message.Message):
    __slots__ = ("app", "room", "peer", "track_id", "frames")
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    app: str
    room: str
    peer: str
    track_id: str
    frames: bool
    def __init__(self, app: _Optional[str] = ..., room: _Optional[str] = ..., peer: _Optional[str] = ..., track_id: _Optional[str] = ..., frames: _Optional[bool] = ...) -> None: ...

class MediaPacket(_message.Message):
    __slots__ = ("rtp", "lagged", "frame")
    RTP_FIELD_NUMBER: _ClassVar[int]
    LAGGED_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    rtp: bytes
    lagged: int
    frame: MediaFrame
    def __init__(self, rtp: _Optional[bytes] = ..., lagged: _Optional[int] = ..., frame: _Optional[_Union[MediaFrame, _Mapping]] = ...) -> None: ...

class MediaFrame(_message.Message):
    __slots__ = ("data", "keyframe", "rtp_timestamp", "timestamp_us")
    DATA_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    RTP_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    keyframe: bool
    rtp_timestamp: int
    timestamp_us: int
    def __init__(self, data: _Optional[bytes] = ..., keyframe: _Optional[bool] = ..., rtp_timestamp: _Optional[int] = ..., timestamp_us: _Optional[int] = ...) -> None: ...

class SessionPingRequest(_message.Message):
    __slots__ = ("room", "peer")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    room: int
    peer: str
    def __init__(self, room: _Optional[int] = ..., peer: _Optional[str] = ...) -> None: ...

class SessionPeersRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: int
    def __init__(self, room: _Optional[int] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("app", "room", "password", "channels", "require_e2e", "cells", "keep", "since", "verified_only", "serve")
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_E2E_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_ONLY_FIELD_NUMBER: _ClassVar[int]
    SERVE_FIELD_NUMBER: _ClassVar[int]
    app: str
    room: str
    password: str
    channels: _containers.RepeatedScalarFieldContainer[str]
    require_e2e: bool
    cells: Cells
    keep: _containers.RepeatedCompositeFieldContainer[Keep]
    since: Since
    verified_only: bool
    serve: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app: _Optional[str] = ..., room: _Optional[str] = ..., password: _Optional[str] = ..., channels: _Optional[_Iterable[str]] = ..., require_e2e: _Optional[bool] = ..., cells: _Optional[_Union[Cells, _Mapping]] = ..., keep: _Optional[_Iterable[_Union[Keep, _Mapping]]] = ..., since: _Optional[_Union[Since, _Mapping]] = ..., verified_only: _Optional[bool] = ..., serve: _Optional[_Iterable[str]] = ...) -> None: ...

class Keep(_message.Message):
    __slots__ = ("channel", "max_messages", "max_age_seconds")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    max_messages: int
    max_age_seconds: int
    def __init__(self, channel: _Optional[str] = ..., max_messages: _Optional[int] = ..., max_age_seconds: _Optional[int] = ...) -> None: ...

class Since(_message.Message):
    __slots__ = ("cursor", "all", "age_seconds")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    all: bool
    age_seconds: int
    def __init__(self, cursor: _Optional[int] = ..., all: _Optional[bool] = ..., age_seconds: _Optional[int] = ...) -> None: ...

class Cells(_message.Message):
    __slots__ = ("enabled", "cell_size", "link_budget")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CELL_SIZE_FIELD_NUMBER: _ClassVar[int]
    LINK_BUDGET_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    cell_size: int
    link_budget: int
    def __init__(self, enabled: _Optional[bool] = ..., cell_size: _Optional[int] = ..., link_budget: _Optional[int] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: int
    def __init__(self, room: _Optional[int] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("room", "channel", "payload", "targets")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    room: int
    channel: str
    payload: Payload
    targets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, room: _Optional[int] = ..., channel: _Optional[str] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., targets: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("room", "channels", "since")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    room: int
    channels: _containers.RepeatedScalarFieldContainer[str]
    since: Since
    def __init__(self, room: _Optional[int] = ..., channels: _Optional[_Iterable[str]] = ..., since: _Optional[_Union[Since, _Mapping]] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("text", "json", "binary", "meta_json")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    text: str
    json: str
    binary: bytes
    meta_json: str
    def __init__(self, text: _Optional[str] = ..., json: _Optional[str] = ..., binary: _Optional[bytes] = ..., meta_json: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("reply", "event", "hello", "leg_offer")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    LEG_OFFER_FIELD_NUMBER: _ClassVar[int]
    reply: Reply
    event: Event
    hello: Hello
    leg_offer: LegOffer
    def __init__(self, reply: _Optional[_Union[Reply, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., leg_offer: _Optional[_Union[LegOffer, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("self_id", "version")
    SELF_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    self_id: str
    version: str
    def __init__(self, self_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("request_id", "error", "room", "self_id", "delivered_to", "rtt_ms", "peers", "track", "status")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SELF_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_TO_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    TRACK_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    error: Error
    room: int
    self_id: str
    delivered_to: _containers.RepeatedScalarFieldContainer[str]
    rtt_ms: float
    peers: _containers.RepeatedCompositeFieldContainer[PeerInfo]
    track: int
    status: StatusReply
    def __init__(self, request_id: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., room: _Optional[int] = ..., self_id: _Optional[str] = ..., delivered_to: _Optional[_Iterable[str]] = ..., rtt_ms: _Optional[float] = ..., peers: _Optional[_Iterable[_Union[PeerInfo, _Mapping]]] = ..., track: _Optional[int] = ..., status: _Optional[_Union[StatusReply, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("room", "app", "room_id", "peer_join", "peer_leave", "peer_seen", "message", "progress", "room_error", "lagged", "mesh_state", "stream_add", "track_add", "track_remove", "track_ready", "mesh_peer_state", "keyframe_wanted", "request", "response", "undelivered")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_JOIN_FIELD_NUMBER: _ClassVar[int]
    PEER_LEAVE_FIELD_NUMBER: _ClassVar[int]
    PEER_SEEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ROOM_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAGGED_FIELD_NUMBER: _ClassVar[int]
    MESH_STATE_FIELD_NUMBER: _ClassVar[int]
    STREAM_ADD_FIELD_NUMBER: _ClassVar[int]
    TRACK_ADD_FIELD_NUMBER: _ClassVar[int]
    TRACK_REMOVE_FIELD_NUMBER: _ClassVar[int]
    TRACK_READY_FIELD_NUMBER: _ClassVar[int]
    MESH_PEER_STATE_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_WANTED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    UNDELIVERED_FIELD_NUMBER: _ClassVar[int]
    room: int
    app: str
    room_id: str
    peer_join: PeerEvent
    peer_leave: PeerEvent
    peer_seen: PeerEvent
    message: Message
    progress: Progress
    room_error: RoomError
    lagged: Lagged
    mesh_state: CellStatus
    stream_add: MediaEvent
    track_add: MediaEvent
    track_remove: MediaEvent
    track_ready: MediaEvent
    mesh_peer_state: MeshPeerState
    keyframe_wanted: MediaEvent
    request: IncomingRequest
    response: Response
    undelivered: Undelivered
    def __init__(self, room: _Optional[int] = ..., app: _Optional[str] = ..., room_id: _Optional[str] = ..., peer_join: _Optional[_Union[PeerEvent, _Mapping]] = ..., peer_leave: _Optional[_Union[PeerEvent, _Mapping]] = ..., peer_seen: _Optional[_Union[PeerEvent, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., room_error: _Optional[_Union[RoomError, _Mapping]] = ..., lagged: _Optional[_Union[Lagged, _Mapping]] = ..., mesh_state: _Optional[_Union[CellStatus, _Mapping]] = ..., stream_add: _Optional[_Union[MediaEvent, _Mapping]] = ..., track_add: _Optional[_Union[MediaEvent, _Mapping]] = ..., track_remove: _Optional[_Union[MediaEvent, _Mapping]] = ..., track_ready: _Optional[_Union[MediaEvent, _Mapping]] = ..., mesh_peer_state: _Optional[_Union[MeshPeerState, _Mapping]] = ..., keyframe_wanted: _Optional[_Union[MediaEvent, _Mapping]] = ..., request: _Optional[_Union[IncomingRequest, _Mapping]] = ..., response: _Optional[_Union[Response, _Mapping]] = ..., undelivered: _Optional[_Union[Undelivered, _Mapping]] = ...) -> None: ...

class Undelivered(_message.Message):
    __slots__ = ("peer", "channel", "messages", "bytes")
    PEER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    peer: str
    channel: str
    messages: int
    bytes: int
    def __init__(self, peer: _Optional[str] = ..., channel: _Optional[str] = ..., messages: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class IncomingRequest(_message.Message):
    __slots__ = ("id", "channel", "payload")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: int
    channel: str
    payload: Payload
    def __init__(self, id: _Optional[int] = ..., channel: _Optional[str] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., **kwargs) -> None: ...

class Response(_message.Message):
    __slots__ = ("request_id", "peer", "status", "payload", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    peer: str
    status: ResponseStatus
    payload: Payload
    error: str
    def __init__(self, request_id: _Optional[int] = ..., peer: _Optional[str] = ..., status: _Optional[_Union[ResponseStatus, str]] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class MeshPeerState(_message.Message):
    __slots__ = ("peer", "linked", "cell", "bridge")
    PEER_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    peer: str
    linked: bool
    cell: int
    bridge: bool
    def __init__(self, peer: _Optional[str] = ..., linked: _Optional[bool] = ..., cell: _Optional[int] = ..., bridge: _Optional[bool] = ...) -> None: ...

class MediaEvent(_message.Message):
    __slots__ = ("peer", "stream_id", "track_id", "kind", "codec", "meta_json", "local_track")
    PEER_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    LOCAL_TRACK_FIELD_NUMBER: _ClassVar[int]
    peer: str
    stream_id: str
    track_id: str
    kind: str
    codec: str
    meta_json: str
    local_track: int
    def __init__(self, peer: _Optional[str] = ..., stream_id: _Optional[str] = ..., track_id: _Optional[str] = ..., kind: _Optional[str] = ..., codec: _Optional[str] = ..., meta_json: _Optional[str] = ..., local_track: _Optional[int] = ...) -> None: ...

class PeerEvent(_message.Message):
    __slots__ = ("peer", "reason", "security", "type")
    PEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    peer: str
    reason: str
    security: str
    type: PeerType
    def __init__(self, peer: _Optional[str] = ..., reason: _Optional[str] = ..., security: _Optional[str] = ..., type: _Optional[_Union[PeerType, str]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("channel", "local", "payload", "cursor", "history", "verified")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    channel: str
    local: bool
    payload: Payload
    cursor: int
    history: bool
    verified: bool
    def __init__(self, channel: _Optional[str] = ..., local: _Optional[bool] = ..., payload: _Optional[_Union[Payload, _Mapping]] = ..., cursor: _Optional[int] = ..., history: _Optional[bool] = ..., verified: _Optional[bool] = ..., **kwargs) -> None: ...

class Progress(_message.Message):
    __slots__ = ("channel", "fraction", "meta_json")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    channel: str
    fraction: float
    meta_json: str
    def __init__(self, channel: _Optional[str] = ..., fraction: _Optional[float] = ..., meta_json: _Optional[str] = ..., **kwargs) -> None: ...

class RoomError(_message.Message):
    __slots__ = ("code", "message", "peer")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    peer: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., peer: _Optional[str] = ...) -> None: ...

class Lagged(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: int
    def __init__(self, dropped: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("peer_id", "relays", "rooms", "drops", "uptime_ms", "version", "sessions", "links", "pending_dials", "turn", "links_relayed")
    class DropsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    RELAYS_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    PENDING_DIALS_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    LINKS_RELAYED_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    relays: _containers.RepeatedCompositeFieldContainer[RelayInfo]
    rooms: _containers.RepeatedCompositeFieldContainer[RoomInfo]
    drops: _containers.ScalarMap[str, int]
    uptime_ms: int
    version: str
    sessions: int
    links: int
    pending_dials: int
    turn: _containers.RepeatedCompositeFieldContainer[TurnServerInfo]
    links_relayed: int
    def __init__(self, peer_id: _Optional[str] = ..., relays: _Optional[_Iterable[_Union[RelayInfo, _Mapping]]] = ..., rooms: _Optional[_Iterable[_Union[RoomInfo, _Mapping]]] = ..., drops: _Optional[_Mapping[str, int]] = ..., uptime_ms: _Optional[int] = ..., version: _Optional[str] = ..., sessions: _Optional[int] = ..., links: _Optional[int] = ..., pending_dials: _Optional[int] = ..., turn: _Optional[_Iterable[_Union[TurnServerInfo, _Mapping]]] = ..., links_relayed: _Optional[int] = ...) -> None: ...

class TurnServerInfo(_message.Message):
    __slots__ = ("url", "state", "relay_address", "error", "checked_ms_ago")
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RELAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKED_MS_AGO_FIELD_NUMBER: _ClassVar[int]
    url: str
    state: str
    relay_address: str
    error: str
    checked_ms_ago: int
    def __init__(self, url: _Optional[str] = ..., state: _Optional[str] = ..., relay_address: _Optional[str] = ..., error: _Optional[str] = ..., checked_ms_ago: _Optional[int] = ...) -> None: ...

class RoomInfo(_message.Message):
    __slots__ = ("app", "room", "peers", "sessions", "password", "e2e_peers", "require_e2e", "cells")
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    E2E_PEERS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_E2E_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    app: str
    room: str
    peers: _containers.RepeatedScalarFieldContainer[str]
    sessions: int
    password: bool
    e2e_peers: _containers.RepeatedScalarFieldContainer[str]
    require_e2e: bool
    cells: CellStatus
    def __init__(self, app: _Optional[str] = ..., room: _Optional[str] = ..., peers: _Optional[_Iterable[str]] = ..., sessions: _Optional[int] = ..., password: _Optional[bool] = ..., e2e_peers: _Optional[_Iterable[str]] = ..., require_e2e: _Optional[bool] = ..., cells: _Optional[_Union[CellStatus, _Mapping]] = ...) -> None: ...

class CellStatus(_message.Message):
    __slots__ = ("members", "cell", "cell_count", "links_wanted", "bridges", "ttl", "records", "epoch", "bridge", "cell_size")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    CELL_COUNT_FIELD_NUMBER: _ClassVar[int]
    LINKS_WANTED_FIELD_NUMBER: _ClassVar[int]
    BRIDGES_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    CELL_SIZE_FIELD_NUMBER: _ClassVar[int]
    members: int
    cell: int
    cell_count: int
    links_wanted: int
    bridges: int
    ttl: int
    records: int
    epoch: int
    bridge: bool
    cell_size: int
    def __init__(self, members: _Optional[int] = ..., cell: _Optional[int] = ..., cell_count: _Optional[int] = ..., links_wanted: _Optional[int] = ..., bridges: _Optional[int] = ..., ttl: _Optional[int] = ..., records: _Optional[int] = ..., epoch: _Optional[int] = ..., bridge: _Optional[bool] = ..., cell_size: _Optional[int] = ...) -> None: ...

class RelayInfo(_message.Message):
    __slots__ = ("url", "state", "latency_ms", "score", "events_in", "events_out", "last_error", "last_error_at_ms", "events_rejected", "access", "events_too_large", "topics_left_out", "max_subscriptions", "max_filters", "max_message_length", "auth_required")
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_IN_FIELD_NUMBER: _ClassVar[int]
    EVENTS_OUT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_TOO_LARGE_FIELD_NUMBER: _ClassVar[int]
    TOPICS_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    MAX_SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_FILTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    url: str
    state: str
    latency_ms: int
    score: float
    events_in: int
    events_out: int
    last_error: str
    last_error_at_ms: int
    events_rejected: int
    access: str
    events_too_large: int
    topics_left_out: int
    max_subscriptions: int
    max_filters: int
    max_message_length: int
    auth_required: bool
    def __init__(self, url: _Optional[str] = ..., state: _Optional[str] = ..., latency_ms: _Optional[int] = ..., score: _Optional[float] = ..., events_in: _Optional[int] = ..., events_out: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_at_ms: _Optional[int] = ..., events_rejected: _Optional[int] = ..., access: _Optional[str] = ..., events_too_large: _Optional[int] = ..., topics_left_out: _Optional[int] = ..., max_subscriptions: _Optional[int] = ..., max_filters: _Optional[int] = ..., max_message_length: _Optional[int] = ..., auth_required: _Optional[bool] = ...) -> None: ...

class PeersRequest(_message.Message):
    __slots__ = ("app", "room")
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    app: str
    room: str
    def __init__(self, app: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class PeersReply(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[PeerInfo]
    def __init__(self, peers: _Optional[_Iterable[_Union[PeerInfo, _Mapping]]] = ...) -> None: ...

class PeerInfo(_message.Message):
    __slots__ = ("id", "rtt_ms", "connected_ms", "security", "path", "keeps", "health")
    ID_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_MS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    KEEPS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    rtt_ms: float
    connected_ms: int
    security: str
    path: LinkPath
    keeps: _containers.RepeatedScalarFieldContainer[str]
    health: LinkHealth
    def __init__(self, id: _Optional[str] = ..., rtt_ms: _Optional[float] = ..., connected_ms: _Optional[int] = ..., security: _Optional[str] = ..., path: _Optional[_Union[LinkPath, _Mapping]] = ..., keeps: _Optional[_Iterable[str]] = ..., health: _Optional[_Union[LinkHealth, _Mapping]] = ...) -> None: ...

class LinkHealth(_message.Message):
    __slots__ = ("ice", "dtls", "sctp", "channel", "buffered_bytes", "window_bytes", "queued_frames", "messages_sent", "messages_received", "bytes_sent", "bytes_received")
    ICE_FIELD_NUMBER: _ClassVar[int]
    DTLS_FIELD_NUMBER: _ClassVar[int]
    SCTP_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_SENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ice: LayerState
    dtls: LayerState
    sctp: LayerState
    channel: LayerState
    buffered_bytes: int
    window_bytes: int
    queued_frames: int
    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    def __init__(self, ice: _Optional[_Union[LayerState, str]] = ..., dtls: _Optional[_Union[LayerState, str]] = ..., sctp: _Optional[_Union[LayerState, str]] = ..., channel: _Optional[_Union[LayerState, str]] = ..., buffered_bytes: _Optional[int] = ..., window_bytes: _Optional[int] = ..., queued_frames: _Optional[int] = ..., messages_sent: _Optional[int] = ..., messages_received: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class LinkPath(_message.Message):
    __slots__ = ("local", "remote", "rtt_ms", "bytes_sent", "bytes_received")
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    local: Candidate
    remote: Candidate
    rtt_ms: float
    bytes_sent: int
    bytes_received: int
    def __init__(self, local: _Optional[_Union[Candidate, _Mapping]] = ..., remote: _Optional[_Union[Candidate, _Mapping]] = ..., rtt_ms: _Optional[float] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("type", "protocol", "address")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    type: str
    protocol: str
    address: str
    def __init__(self, type: _Optional[str] = ..., protocol: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("app", "room", "peer")
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    app: str
    room: str
    peer: str
    def __init__(self, app: _Optional[str] = ..., room: _Optional[str] = ..., peer: _Optional[str] = ...) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("rtt_ms",)
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    rtt_ms: float
    def __init__(self, rtt_ms: _Optional[float] = ...) -> None: ...

class RelaysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelaysReply(_message.Message):
    __slots__ = ("relays",)
    RELAYS_FIELD_NUMBER: _ClassVar[int]
    relays: _containers.RepeatedCompositeFieldContainer[RelayInfo]
    def __init__(self, relays: _Optional[_Iterable[_Union[RelayInfo, _Mapping]]] = ...) -> None: ...

class TokenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TokenReply(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("app", "room", "password", "clear_channel")
    APP_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLEAR_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    app: str
    room: str
    password: str
    clear_channel: str
    def __init__(self, app: _Optional[str] = ..., room: _Optional[str] = ..., password: _Optional[str] = ..., clear_channel: _Optional[str] = ...) -> None: ...

class ChannelHistory(_message.Message):
    __slots__ = ("channel", "messages", "bytes", "oldest", "newest")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIELD_NUMBER: _ClassVar[int]
    channel: str
    messages: int
    bytes: int
    oldest: int
    newest: int
    def __init__(self, channel: _Optional[str] = ..., messages: _Optional[int] = ..., bytes: _Optional[int] = ..., oldest: _Optional[int] = ..., newest: _Optional[int] = ...) -> None: ...

class HistoryReply(_message.Message):
    __slots__ = ("channels", "messages", "bytes", "oldest", "newest", "cleared")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIELD_NUMBER: _ClassVar[int]
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[ChannelHistory]
    messages: int
    bytes: int
    oldest: int
    newest: int
    cleared: int
    def __init__(self, channels: _Optional[_Iterable[_Union[ChannelHistory, _Mapping]]] = ..., messages: _Optional[int] = ..., bytes: _Optional[int] = ..., oldest: _Optional[int] = ..., newest: _Optional[int] = ..., cleared: _Optional[int] = ...) -> None: ...

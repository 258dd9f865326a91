"""Message bodies as the JS client and Trystero type them: text, a JSON value, or bytes with meta."""

from __future__ import annotations

import json
import re
from typing import Any

from .v1 import meshrtc_pb2 as pb

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def to_payload(data: Any, meta: Any = None) -> pb.Payload:
    """str → text, bytes-like → binary (with meta), anything else → JSON."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        meta_json = "" if meta is None else json.dumps(meta)
        return pb.Payload(binary=bytes(data), meta_json=meta_json)
    if meta is not None:
        raise TypeError("meshrtc: meta is only sent with binary data")
    if isinstance(data, str):
        return pb.Payload(text=data)
    return pb.Payload(json=json.dumps(data))


def request_payload(data: Any, meta: Any = None) -> pb.Payload:
    """A request's data as `to_payload` types it, with `meta` (the request's own metadata, any
    JSON value) whatever the data's type."""
    payload = to_payload(data)
    if meta is not None:
        payload.meta_json = json.dumps(meta)
    return payload


def from_payload(payload: pb.Payload) -> tuple[Any, Any]:
    """(data, meta); raises ValueError on JSON a peer garbled."""
    meta = json.loads(payload.meta_json) if payload.meta_json else None
    kind = payload.WhichOneof("kind")
    if kind == "binary":
        return payload.binary, meta
    if kind == "json":
        return json.loads(payload.json), meta
    return payload.text, meta


def age_seconds(text: str) -> int:
    """'30m', '12h', '7d' as seconds."""
    m = _AGE.match(str(text))
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"meshrtc: {text!r} is not an age such as 30m, 12h, 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def keep_rules(keep: dict[str, Any]) -> list[pb.Keep]:
    """{'chat': 10000, 'files': '7d', 'log': (500, '12h')} as the daemon's keep rules."""
    rules = []
    for channel, limits in keep.items():
        rule = pb.Keep(channel=channel)
        for limit in limits if isinstance(limits, (tuple, list)) else (limits,):
            if isinstance(limit, int):
                rule.max_messages = limit
            else:
                rule.max_age_seconds = age_seconds(limit)
        rules.append(rule)
    return rules


def since_of(since: int | str | None) -> pb.Since | None:
    """A cursor, 'all', or an age such as '10m'."""
    if since is None:
        return None
    if since == "all":
        return pb.Since(all=True)
    if isinstance(since, int):
        return pb.Since(cursor=since)
    return pb.Since(age_seconds=age_seconds(since))

"""The Python client against real daemons: two meshrtcd on loopback, an app on each."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

import pytest

import meshrtc
from conftest import Daemon
from meshrtc import LeaveReason, Message, PeerJoin, PeerLeave, Room

pytestmark = pytest.mark.usefixtures("report_logs")

LIVENESS = 30.0  # seconds; a liveness bound, several times what a join takes on loopback


async def until(room: Room, pred: Callable[[meshrtc.Event], bool], what: str) -> meshrtc.Event:
    """The first event of `room` that satisfies `pred` (others are skipped)."""
    deadline = time.monotonic() + LIVENESS
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        try:
            event = await room.next_event(timeout=left)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None
        if pred(event):
            return event


def joined(peer: str) -> Callable[[meshrtc.Event], bool]:
    return lambda e: isinstance(e, PeerJoin) and e.peer == peer


def message(channel: str) -> Callable[[meshrtc.Event], bool]:
    return lambda e: isinstance(e, Message) and e.channel == channel


def room_name(test: str) -> str:
    return f"{test}-{uuid.uuid4().hex[:8]}"


async def joined_apps(daemons, test: str):
    """An app on each daemon in a fresh room, each seeing the other joined."""
    a, b = daemons
    na = await meshrtc.connect(a.endpoint)
    nb = await meshrtc.connect(b.endpoint)
    name = room_name(test)
    ra = await na.join_room("py-test", name)
    rb = await nb.join_room("py-test", name)
    await until(ra, joined(nb.self_id), "b joins at a")
    await until(rb, joined(na.self_id), "a joins at b")
    return na, nb, ra, rb, name


async def test_messages_both_ways_binary_with_meta_and_leave(daemons):
    na, nb, ra, rb, name = await joined_apps(daemons, "chat")
    assert ra.peers() == [nb.self_id]

    delivered = await ra.channel("chat").send("hello from a")
    assert delivered == [nb.self_id]
    m = await until(rb, message("chat"), "text at b")
    assert (m.data, m.peer, m.meta) == ("hello from a", na.self_id, None)

    await rb.channel("chat").send({"n": 1, "words": ["and", "back"]}, to=na.self_id)
    m = await until(ra, message("chat"), "JSON at a")
    assert m.data == {"n": 1, "words": ["and", "back"]} and m.peer == nb.self_id

    blob = bytes(range(256)) * 1024  # 256 KiB: chunked on the wire
    await ra.channel("file").send(blob, meta={"name": "blob.bin"})
    m = await until(rb, message("file"), "binary at b")
    assert isinstance(m.data, bytes) and m.data == blob
    assert m.meta == {"name": "blob.bin"}

    rtt = await ra.ping(nb.self_id)
    assert 0 < rtt < 5000
    status = await na.status()
    assert status.peer_id == na.self_id
    assert any(r.room == name and nb.self_id in r.peers for r in status.rooms)

    with pytest.raises(TypeError):
        await ra.channel("chat").send("text", meta={"only": "binary"})
    with pytest.raises(meshrtc.MeshrtcError) as refused:
        await ra.ping("not-a-peer-of-this-room")
    assert refused.value.code == "not_found", refused.value

    await rb.leave()
    gone = await until(ra, lambda e: isinstance(e, PeerLeave), "b's goodbye at a")
    assert gone == PeerLeave(nb.self_id, LeaveReason.LEAVE)
    assert ra.peers() == []
    await na.close()
    await nb.close()


async def test_daemon_restart_reconnects_and_rejoins(daemons):
    _, b = daemons
    na, nb, ra, rb, _ = await joined_apps(daemons, "restart")
    await rb.serve("echo", lambda data, peer, meta: data)

    b.stop()
    lost = await until(rb, lambda e: isinstance(e, PeerLeave), "daemon loss at b's app")
    assert lost.reason == LeaveReason.DAEMON
    assert nb.state == meshrtc.NodeState.RECONNECTING
    with pytest.raises(ConnectionError):
        await rb.channel("chat").send("while the daemon is down")
    await b.start()
    await nb.wait_state(meshrtc.NodeState.OPEN, timeout=LIVENESS)
    await until(rb, joined(na.self_id), "a again at b after the restart")

    await rb.channel("chat").send("after restart")
    m = await until(ra, message("chat"), "message after restart at a")
    assert m.data == "after restart"
    await ra.channel("chat").send("welcome back")
    m = await until(rb, message("chat"), "reply after restart at b")
    assert m.data == "welcome back"
    # What b's app served before the restart, it serves again.
    assert await ra.channel("echo").request("again", to=nb.self_id, timeout=5) == "again"
    await na.close()
    await nb.close()


async def test_kept_channel_replays_to_a_resuming_app(daemons):
    a, b = daemons
    name = room_name("keep")
    na = await meshrtc.connect(a.endpoint)
    nb = await meshrtc.connect(b.endpoint)
    ra = await na.join_room("py-test", name, keep={"chat": 100})
    rb = await nb.join_room("py-test", name)
    await until(rb, joined(na.self_id), "a joins at b")
    keeper = await until(
        rb,
        lambda e: isinstance(e, meshrtc.PeerSeen) and e.type == meshrtc.PeerType.KEEPER,
        "a sighted as a keeper",
    )
    assert keeper.peer == na.self_id
    await rb.channel("chat").send("k0")
    first = await until(ra, message("chat"), "kept k0")
    assert first.cursor > 0 and not first.history
    await na.close()  # the app stops; the daemon keeps the room and what arrives
    await rb.channel("chat").send("k1")
    await rb.channel("chat").send("k2")
    na = await meshrtc.connect(a.endpoint)
    # Resume only once the daemon holds all three (a fixed pause passes or fails by luck).
    deadline = time.monotonic() + LIVENESS
    while (await na.history("py-test", name)).messages < 3:
        assert time.monotonic() < deadline, "a never kept k1 and k2"
        await asyncio.sleep(0.05)
    ra = await na.join_room("py-test", name, keep={"chat": 100}, since=first.cursor)
    replay = [await until(ra, message("chat"), f"replay {i}") for i in range(2)]
    assert [(m.data, m.history) for m in replay] == [("k1", True), ("k2", True)]
    await na.close()
    await nb.close()


async def test_no_daemon_says_how_to_start_one(tmp_path):
    with pytest.raises(ConnectionError) as err:
        await meshrtc.connect(f"unix:{tmp_path}/none.sock", timeout=2.0)
    assert "meshrtcd" in str(err.value)


async def test_request_reply_and_several_in_flight(daemons):
    na, nb, ra, rb, _ = await joined_apps(daemons, "request")
    seen = []

    async def add(data, peer, meta):
        seen.append((peer, meta))
        return data["a"] + data["b"]

    async def slow(data, peer, meta):
        await asyncio.sleep(data["delay"])
        return {"n": data["n"]}

    await rb.serve("add", add)
    await rb.channel("echo").serve(lambda data, peer, meta: bytes(reversed(data)))  # plain
    await rb.serve("slow", slow)
    assert rb.serving() == ["add", "echo", "slow"]

    total = await ra.channel("add").request({"a": 2, "b": 3}, to=nb.self_id, meta={"t": "x"})
    assert total == 5
    assert seen == [(na.self_id, {"t": "x"})]
    assert await ra.channel("echo").request(b"\x01\x02\x03", to=nb.self_id) == b"\x03\x02\x01"

    # Answers come back in the reverse order of the asks: each reaches its own request.
    asks = [{"n": n, "delay": 0.1 * (4 - n)} for n in range(4)]
    replies = await asyncio.gather(
        *(ra.channel("slow").request(ask, to=nb.self_id, timeout=5) for ask in asks)
    )
    assert replies == [{"n": n} for n in range(4)]
    assert not na._outcomes, "finished requests are forgotten"
    await na.close()
    await nb.close()


async def test_request_handler_exception_rejects_with_its_message(daemons):
    na, nb, ra, rb, _ = await joined_apps(daemons, "reject")

    def withdraw(data, peer, meta):
        raise ValueError(f"insufficient funds for {data['amount']}")

    await rb.serve("withdraw", withdraw)
    with pytest.raises(meshrtc.RequestRejected) as rejected:
        await ra.channel("withdraw").request({"amount": 7}, to=nb.self_id, timeout=5)
    assert rejected.value.error == "insufficient funds for 7"
    assert rejected.value.peer == nb.self_id
    assert rejected.value.status == meshrtc.ResponseStatus.REJECTED
    assert "insufficient funds for 7" in str(rejected.value)
    await na.close()
    await nb.close()


async def test_incoming_requests_as_events_answered_by_the_app(daemons):
    na, nb, ra, rb, _ = await joined_apps(daemons, "manual")
    await rb.serve("ask")  # no handler: the app answers

    asking = asyncio.create_task(ra.channel("ask").request("ready?", to=nb.self_id, timeout=10))
    req = await until(rb, lambda e: isinstance(e, meshrtc.IncomingRequest), "a request at b")
    assert (req.channel, req.peer, req.data, req.meta) == ("ask", na.self_id, "ready?", None)
    await req.respond({"ready": True})
    assert await asyncio.wait_for(asking, LIVENESS) == {"ready": True}

    asking = asyncio.create_task(ra.channel("ask").request("again?", to=nb.self_id, timeout=10))
    req = await until(rb, lambda e: isinstance(e, meshrtc.IncomingRequest), "a second request")
    await req.reject("not now")
    with pytest.raises(meshrtc.RequestRejected) as rejected:
        await asyncio.wait_for(asking, LIVENESS)
    assert rejected.value.error == "not now"
    with pytest.raises(meshrtc.MeshrtcError) as twice:
        await req.respond("too late")  # answered already
    assert twice.value.code == "not_found", twice.value
    await na.close()
    await nb.close()


async def test_request_times_out_on_a_channel_nobody_serves(daemons):
    na, nb, ra, rb, _ = await joined_apps(daemons, "timeout")
    started = time.monotonic()
    with pytest.raises(meshrtc.RequestTimeout) as timed_out:
        await ra.channel("nobody").request("anyone?", to=nb.self_id, timeout=1.0)
    took = time.monotonic() - started
    assert 0.9 <= took < 4.0, took  # the daemon's deadline, not the client's fallback
    assert timed_out.value.peer == nb.self_id and isinstance(timed_out.value, TimeoutError)
    with pytest.raises(meshrtc.RequestDisconnected):
        await ra.channel("nobody").request("anyone?", to="not-a-peer-of-this-room", timeout=5)
    await na.close()
    await nb.close()


async def test_request_many_across_two_serving_peers(daemons):
    a, _ = daemons
    c = Daemon([a.relay_url], embedded_relay=False)
    await c.start()
    try:
        na, nb, ra, rb, name = await joined_apps(daemons, "many")
        nc = await meshrtc.connect(c.endpoint)
        rc = await nc.join_room(
            "py-test", name, serve={"who": lambda data, peer, meta: f"c says {data}"}
        )
        await rb.serve("who", lambda data, peer, meta: f"b says {data}")
        await until(ra, joined(nc.self_id), "c joins at a")
        await until(rc, joined(na.self_id), "a joins at c")

        ghost = "not-a-peer-of-this-room"
        targets = [nc.self_id, ghost, nb.self_id]
        outcomes = await ra.channel("who").request_many("hi", to=targets, timeout=5)
        assert list(outcomes) == targets
        assert outcomes[nb.self_id] == meshrtc.Response(
            nb.self_id, meshrtc.ResponseStatus.FULFILLED, "b says hi"
        )
        assert outcomes[nc.self_id].data == "c says hi" and outcomes[nc.self_id].ok
        assert outcomes[ghost].status == meshrtc.ResponseStatus.DISCONNECTED
        with pytest.raises(meshrtc.RequestDisconnected):
            outcomes[ghost].result()
        await na.close()
        await nb.close()
        await nc.close()
    finally:
        c.remove()

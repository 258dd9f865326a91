"""Real daemons for the client's tests: meshrtcd processes on loopback, one with an embedded
Nostr relay, ICE bound to 127.0.0.1 and no public STUN."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import AsyncIterator

import pytest

import meshrtc

REPO = pathlib.Path(__file__).resolve().parents[3]


def built_daemon() -> str:
    """The meshrtcd that `cargo build` made: in $CARGO_TARGET_DIR when that is set, which
    `cargo metadata` knows (a fixed target/ path would miss it)."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return str(pathlib.Path(json.loads(out)["target_directory"]) / "debug" / "meshrtcd")


MESHRTCD = os.environ.get("MESHRTCD") or built_daemon()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One meshrtcd process with its own data directory."""

    def __init__(self, relays: list[str], embedded_relay: bool) -> None:
        self.dir = tempfile.mkdtemp(prefix="meshrtc-py-")
        self.relay_port = free_port() if embedded_relay else None
        self.relays = relays
        self.ws_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"unix:{self.dir}/meshrtcd.sock"

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.relay_port}"

    def log(self) -> str:
        try:
            return pathlib.Path(self.dir, "daemon.log").read_text()
        except OSError:
            return ""

    async def start(self) -> None:
        args = [MESHRTCD, "--data-dir", self.dir, "--ice-addr", "127.0.0.1", "--ice-server", "none"]
        args += ["--ws", f"127.0.0.1:{self.ws_port}"]
        if self.relay_port:
            args += ["--embedded-relay", f"127.0.0.1:{self.relay_port}"]
        for r in self.relays:
            args += ["--relay", r]
        env = dict(os.environ, RUST_LOG="info,webrtc=warn,rtc=warn")
        # The daemon holds its own copy of the log's descriptor.
        with open(pathlib.Path(self.dir, "daemon.log"), "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)
        deadline = time.monotonic() + 20
        while True:
            try:
                node = await meshrtc.connect(self.endpoint, timeout=1.0)
                await node.status()
                await node.close()
                return
            except ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop(signal.SIGKILL)
                    raise RuntimeError(f"meshrtcd did not come up; log:\n{self.log()}") from None
                await asyncio.sleep(0.05)

    def link_report(self) -> str:
        """What the daemon's links know, room by room (layers, bytes waiting in SCTP and in the
        writer's queue, what crossed the channel), from the CLI built beside the daemon."""
        cli = str(pathlib.Path(MESHRTCD).with_name("meshrtc"))

        def run(*args: str) -> str:
            return subprocess.run(
                [cli, "--daemon", self.endpoint, *args], capture_output=True, check=True, timeout=5
            ).stdout.decode()

        try:
            status = json.loads(run("status", "--json"))
            lines = [f"drops {status.get('drops', {})}"]
            for r in status.get("rooms", []):
                peers = json.loads(run("peers", r["room"], "--app", r["app"], "--json"))
                if not peers:
                    lines.append(f"{r['app']}/{r['room']}: no joined peer")
                for p in peers:
                    lines.append(f"{r['app']}/{r['room']} {p['id']}: {p.get('health')}")
            return "\n".join(lines)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as err:
            return f"(no link report: {err})"

    def remove(self) -> None:
        """Stops the daemon and deletes its data directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
async def daemons() -> AsyncIterator[tuple[Daemon, Daemon]]:
    """Two daemons: `a` serves the relay both use."""
    a = Daemon([], embedded_relay=True)
    b = Daemon([a.relay_url], embedded_relay=False)
    try:
        await a.start()
        await b.start()
        yield a, b
    finally:
        for d in (b, a):
            d.remove()


@pytest.fixture
def report_logs(request: pytest.FixtureRequest, daemons: tuple[Daemon, Daemon]):
    """Prints the daemons' logs when a test fails."""
    yield
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for name, d in zip("ab", daemons):
            if d.proc is not None:
                print(f"--- daemon {name} links\n{d.link_report()}")
            print(f"--- daemon {name} log\n{d.log()[-20000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep

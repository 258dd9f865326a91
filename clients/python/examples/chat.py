"""A terminal chat over meshrtcd: every line you type goes to the room, every message is printed.

    python examples/chat.py my-room [--password SECRET] [--daemon unix:PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import meshrtc


async def print_events(room: meshrtc.Room) -> None:
    async for event in room.events():
        if isinstance(event, meshrtc.Message):
            print(f"<{event.peer[:6]}> {event.data}")
        elif isinstance(event, meshrtc.PeerJoin):
            print(f"* {event.peer[:6]} joined ({event.security.value})")
        elif isinstance(event, meshrtc.PeerLeave):
            print(f"* {event.peer[:6]} left ({event.reason.value})")
        elif isinstance(event, meshrtc.RoomError):
            print(f"! {event.code}: {event.message}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("room")
    parser.add_argument("--app", default="meshrtc-chat")
    parser.add_argument("--password")
    parser.add_argument("--daemon", help="unix:PATH or HOST:PORT (default: the CLI's socket)")
    args = parser.parse_args()
    try:
        node = await meshrtc.connect(args.daemon)
    except ConnectionError as err:
        sys.exit(str(err))
    async with node:
        room = await node.join_room(args.app, args.room, password=args.password)
        print(f"joined {args.room} as {node.self_id}; type a line and press enter")
        printer = asyncio.create_task(print_events(room))
        chat = room.channel("chat")
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip():
                await chat.send(line.rstrip("\n"))
        printer.cancel()
        await room.leave()


if __name__ == "__main__":
    asyncio.run(main())

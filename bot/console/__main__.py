"""``python -m bot.console``: the agent console on its own, for trying it without Asterisk.

The gateway mounts the console with the real AMI client as its CallControl; here the Asterisk actions are
only logged. ``--demo AGENT`` rings that agent with the demo caller (:mod:`bot.console.demo`) over and over:
offered, answered 8 s later, completed after 20 s of talk, 30 s of wrap-up, then again.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from bot.config import ConfigError, voicemail_retention_s
from bot.console.agents import (
    AGENTS_FILE,
    TOKENS_FILE,
    AgentsFileError,
    load_agents,
    roster_with_tokens,
    token_lines,
)
from bot.console.app import ConsoleSettings, build_console
from bot.console.control import LoggedCallControl
from bot.console.demo import seed_call
from bot.console.desk import Answered, Completed, Desk, Offered

log = logging.getLogger("bot.console")


async def demo_calls(desk: Desk, redis: aioredis.Redis, agent_id: str) -> None:
    """Ring ``agent_id`` with the demo caller, again and again."""
    while True:
        call_id = str(uuid.uuid4())
        await seed_call(redis, call_id)
        await desk.feed(Offered(agent_id, call_id, "attendant-billing", f"{time.time():.0f}.1", time.time()))
        await asyncio.sleep(8)
        await desk.feed(Answered(agent_id, call_id, time.time()))
        await asyncio.sleep(20)
        await desk.feed(Completed(agent_id, call_id, "attendant-billing", 20, 30, time.time()))
        await asyncio.sleep(45)


async def serve(args: argparse.Namespace) -> int:
    roster, tokens = roster_with_tokens(load_agents(args.agents), args.tokens)
    if args.demo and roster.get(args.demo) is None:
        print(f"no agent {args.demo!r} in {args.agents}", file=sys.stderr)
        return 2
    redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    settings = ConsoleSettings(voicemail_dir=args.vm_dir, voicemail_retention_s=args.vm_retention)
    console = build_console(roster, redis, LoggedCallControl(), settings=settings)
    await console.start(args.host, args.port)
    print("\n".join(token_lines(roster, tokens, console.url)), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    demo = asyncio.create_task(demo_calls(console.desk, redis, args.demo)) if args.demo else None
    try:
        await stop.wait()
    finally:
        if demo is not None:
            demo.cancel()
            await asyncio.gather(demo, return_exceptions=True)
        await console.close()
        await redis.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.console", description="Attendant agent console")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--agents", type=Path, default=AGENTS_FILE, help="the agents file")
    parser.add_argument("--tokens", type=Path, default=TOKENS_FILE, help="where generated tokens are kept")
    parser.add_argument(
        "--vm-dir",
        type=Path,
        default=Path(os.environ.get("ATTENDANT_VM_DIR", "/var/spool/asterisk/attendant")),
        help="where the after-hours voicemails are (ATTENDANT_VM_DIR)",
    )
    parser.add_argument(
        "--vm-retention",
        type=float,
        default=None,
        help="voicemail retention, seconds: agents' marks expire a day later "
        "(ATTENDANT_VOICEMAIL_RETENTION_S; default 30 days)",
    )
    parser.add_argument("--demo", metavar="AGENT", help="ring this agent with a demo call, repeatedly")
    args = parser.parse_args(argv)
    try:
        env = dict(os.environ)
        if args.vm_retention is not None:
            env["ATTENDANT_VOICEMAIL_RETENTION_S"] = str(args.vm_retention)
        args.vm_retention = voicemail_retention_s(env)
    except ConfigError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(args))
    except AgentsFileError as exc:
        print(f"attendant: the agents file is refused:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``python -m telephony.sim``: call the gateway the way Asterisk does, print both sides and a summary.

``python -m telephony.sim --say "what is my balance" --text "yes" --dtmf 1234# --out bot.wav``

Turns run in the order given on the command line:

``--say TEXT``   speech synthesised with Piper at the call rate and streamed
``--wav FILE``   any WAV (PCM 8/16/24/32-bit, float, A-law, mu-law; any rate and channel count; read with
                 libsndfile), mixed to mono 16-bit and resampled with soxr to the call rate
``--text TEXT``  text injected after the recogniser (kind ``0x40``, the gateway's test extension)
``--dtmf KEYS``  keypad frames about 100 ms apart

``--rate 16000`` plays ``Dial(AudioSocket/host:port/uuid/c(slin16))`` (kind ``0x12``) instead of the
``AudioSocket()`` app (8 kHz, kind ``0x10``); ``--caller-number`` registers the caller over FastAGI first;
``--no-silence`` behaves like an Asterisk Local channel. Exit status: 0 a clean call, 1 the bot sent an error
frame or broke the protocol, 2 the call could not be run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from telephony.frames import SAMPLE_WIDTH
from telephony.sim.caller import SETTLE_S, CallerSimulator
from telephony.sim.errors import SimulatorError
from telephony.sim.report import Event, format_event
from telephony.sim.turns import Turn
from telephony.sim.wav import write_wav

PROG = "python -m telephony.sim"


def _turn(kind: str) -> Callable[[str], Turn]:
    def make(value: str) -> Turn:
        if kind == "wav" and not Path(value).is_file():
            raise argparse.ArgumentTypeError(f"no such file: {value}")
        try:
            return Turn(kind, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    make.__name__ = f"--{kind}"
    return make


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Call the Attendant gateway the way Asterisk's AudioSocket does, and show both sides.",
        epilog=f'Example: {PROG} --say "what is my balance" --text "yes" --dtmf 1234# --out bot.wav',
    )
    p.add_argument("--host", default=os.environ.get("ATTENDANT_HOST", "127.0.0.1"), help="gateway host")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("ATTENDANT_PORT", "9092")), help="gateway port"
    )
    p.add_argument("--uuid", type=uuid.UUID, default=None, help="call UUID (default: random)")
    p.add_argument(
        "--caller-number",
        default=None,
        help="caller id to register over FastAGI first, as the dialplan does (e.g. +15550100001)",
    )
    p.add_argument(
        "--agi-port",
        type=int,
        default=int(os.environ.get("ATTENDANT_AGI_PORT", "4573")),
        help="FastAGI port of the gateway (for --caller-number)",
    )
    p.add_argument(
        "--rate",
        type=int,
        choices=(8000, 16000),
        default=8000,
        help="8000: as the AudioSocket() app (kind 0x10); 16000: as Dial(AudioSocket/.../c(slin16)) (0x12)",
    )
    turns = p.add_argument_group("turns (played in the order given; each may repeat)")
    turns.add_argument(
        "--say",
        dest="turns",
        action="append",
        type=_turn("say"),
        metavar="TEXT",
        help="speak TEXT (Piper at the call rate)",
    )
    turns.add_argument(
        "--wav",
        dest="turns",
        action="append",
        type=_turn("wav"),
        metavar="FILE",
        help="play a WAV file (converted to mono 16-bit at the call rate)",
    )
    turns.add_argument(
        "--text",
        dest="turns",
        action="append",
        type=_turn("text"),
        metavar="TEXT",
        help="inject TEXT after the recogniser (kind 0x40)",
    )
    turns.add_argument(
        "--dtmf",
        dest="turns",
        action="append",
        type=_turn("dtmf"),
        metavar="KEYS",
        help="press keys (0-9 * # A-D), about 100 ms apart",
    )
    p.add_argument("--out", type=Path, default=None, help="write everything the bot sent to this WAV")
    p.add_argument(
        "--no-silence",
        dest="silence",
        action="store_false",
        help="like a Local channel: send nothing while the caller is silent",
    )
    p.add_argument(
        "--wait-s", type=float, default=15.0, help="longest wait for a bot reply to finish (seconds)"
    )
    p.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help="bot silence that counts as the end of its reply (seconds)",
    )
    p.add_argument(
        "--hangup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hang up after the last reply (default); --no-hangup waits up to --wait-s for the bot to",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="where the gateway writes the transcript stream",
    )
    p.add_argument(
        "--no-redis", dest="redis_url", action="store_const", const="", help="do not read the transcript"
    )
    p.add_argument("--voice", type=Path, default=None, help="Piper .onnx voice for --say (default: joe)")
    return p


class _Printer:
    """Prints timeline events, with the column header before the first one."""

    def __init__(self) -> None:
        self._started = False

    def __call__(self, event: Event) -> None:
        if not self._started:
            self._started = True
            print(f"{'t (s)':>8}  {'CALLER':<46}  BOT", flush=True)
        print(format_event(event), flush=True)


async def _main(args: argparse.Namespace) -> int:
    sim = CallerSimulator(
        args.host,
        args.port,
        rate=args.rate,
        call_id=args.uuid,
        silence=args.silence,
        wait_s=args.wait_s,
        settle_s=args.settle_s,
        hangup=args.hangup,
        redis_url=args.redis_url or None,
        voice=args.voice,
        on_event=_Printer(),
        caller_number=args.caller_number,
        agi_port=args.agi_port,
    )
    turns: list[Turn] = args.turns or []
    if any(t.kind == "say" for t in turns):
        print("synthesising caller speech with Piper ...", flush=True)
    try:
        result = await sim.run(turns)
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n── summary " + "─" * 60)
    print(result.summary())
    if args.out is not None:
        write_wav(args.out, bytes(result.bot_audio), result.rate)
        print(
            f"  bot audio  {len(result.bot_audio) / (result.rate * SAMPLE_WIDTH):.2f} s written to {args.out}"
        )
    return 1 if (result.bot_errors or result.protocol_error) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m telephony.sim``."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130

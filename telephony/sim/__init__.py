"""The caller simulator: plays Asterisk's side of a call against the gateway, on the real wire protocols.

One module per job, in the order a call uses them::

    turns.py        what the caller does (say, wav, text, dtmf, audio)
    speech.py       --say: Piper synthesis at the call rate
    wav.py          --wav and --out: audio files through libsndfile (soundfile), resampled with soxr
    audio.py        caller audio: 20 ms frames, levels, resampling
    echo.py         a line with echo: the bot's voice mixed back into the caller's frames
    agi_client.py   the dialplan's FastAGI ``register`` step, as Asterisk sends it
    caller.py       the call itself: AudioSocket client, pacing, turns, replies, hangup
    segment.py      the bot's audio cut into utterances
    transcript.py   the bot's words, from the call's transcript stream in Redis
    report.py       CallResult: per-turn latency, timeline, summary
    cli.py          ``python -m telephony.sim``

Pacing uses :mod:`telephony.pacing`, the same 20 ms schedule as the gateway's outbound audio. Like all of
``telephony/``, nothing here imports ``bot/`` or ``actions/``. The names below are the importable API the
end-to-end tests and the benchmark drive.
"""

from telephony.sim.agi_client import agi_register
from telephony.sim.caller import CallerSimulator
from telephony.sim.echo import EchoPath
from telephony.sim.errors import GatewayUnreachable, SimulatorError
from telephony.sim.report import (
    ENDED_ABORTED,
    ENDED_BOT_HANGUP,
    ENDED_PROTOCOL,
    ENDED_SOCKET_CLOSED,
    ENDED_WE_HUNG_UP,
    CallResult,
    Event,
    TurnResult,
)
from telephony.sim.turns import Turn

__all__ = [
    "ENDED_ABORTED",
    "ENDED_BOT_HANGUP",
    "ENDED_PROTOCOL",
    "ENDED_SOCKET_CLOSED",
    "ENDED_WE_HUNG_UP",
    "CallResult",
    "CallerSimulator",
    "EchoPath",
    "Event",
    "GatewayUnreachable",
    "SimulatorError",
    "Turn",
    "TurnResult",
    "agi_register",
]

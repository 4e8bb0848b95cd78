"""The simulator's line with echo and its barge-in turns, against the scripted bot of
``test_simulate_unit.py``: the bot's voice comes back in the caller's frames 10 dB down and 60 ms late; a
turn with ``barge_s`` starts over the bot's greeting instead of after it; late bot frames are counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from telephony.frames import AudioIn
from telephony.sim import EchoPath, Turn
from telephony.sim.audio import frame_rms
from tests.test_simulate_unit import RATE, FakeBot, sim, tone

FRAME = RATE // 50 * 2


def test_echo_path_delays_and_attenuates() -> None:
    echo = EchoPath(-10.0, 0.06)
    loud = tone(0.02, amp=0.5)
    quiet = bytes(FRAME)
    out = []
    for n in range(8):
        echo.heard(loud if n == 0 else quiet)
        out.append(echo.mix(quiet))
    levels = [frame_rms(f) for f in out]
    first = next(i for i, level in enumerate(levels) if level > 0)
    assert first == 3  # the frame received first comes back three frames (60 ms) later
    ratio_db = 20 * np.log10(levels[first] / frame_rms(loud))
    assert -10.5 < ratio_db < -9.5
    assert sum(1 for level in levels if level > 0) == 1


def test_echo_adds_to_the_callers_own_voice_and_clips() -> None:
    echo = EchoPath(0.0, 0.0)
    full = (np.full(FRAME // 2, 30000, dtype="<i2")).tobytes()
    echo.heard(full)
    mixed = np.frombuffer(echo.mix(full), dtype="<i2")
    assert mixed.max() == 32767  # clipped, not wrapped around


def test_a_negative_barge_delay_is_refused() -> None:
    with pytest.raises(ValueError):
        Turn("audio", "x", pcm=b"\x00\x00", barge_s=-1.0)


@pytest.fixture
async def long_greeting() -> AsyncIterator[tuple[FakeBot, int]]:
    fake = FakeBot(greeting_s=1.5)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    yield fake, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_the_bots_voice_comes_back_on_a_line_with_echo(long_greeting: tuple[FakeBot, int]) -> None:
    fake, port = long_greeting
    result = await sim(port, echo=EchoPath(-10.0, 0.06)).run([])
    assert result.greeting_at is not None
    heard = [(t, frame_rms(m.pcm)) for t, m in fake.received if isinstance(m, AudioIn)]
    echoed = [t for t, level in heard if level > 0]
    assert echoed, "no echo reached the bot"
    greeting_rms = frame_rms(tone(0.02))
    assert all(abs(20 * np.log10(level / greeting_rms) + 10) < 1.5 for _, level in heard if level > 0)
    assert 1.2 < echoed[-1] - echoed[0] < 1.8  # the whole greeting came back


async def test_a_pause_in_the_bots_frames_counts_as_late() -> None:
    """A bot that sends nothing between its greeting and its reply (0.25 s later): one late frame at least,
    and the longest gap is the pause."""
    fake = FakeBot(send_silence=False)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await sim(port).run([Turn("text", "hello")])
    finally:
        server.close()
        await server.wait_closed()
    assert result.late_frames >= 1
    assert result.max_frame_gap_s >= 0.2


async def test_without_echo_the_line_stays_silent(long_greeting: tuple[FakeBot, int]) -> None:
    fake, port = long_greeting
    await sim(port).run([])
    assert not any(frame_rms(m.pcm) > 0 for _, m in fake.received if isinstance(m, AudioIn))


async def test_a_barge_turn_talks_over_the_greeting(long_greeting: tuple[FakeBot, int]) -> None:
    fake, port = long_greeting
    words = tone(0.5, freq=300)
    result = await sim(port).run([Turn("audio", "over the greeting", pcm=words, barge_s=0.3)])
    turn = result.turns[0]
    assert result.greeting_at is not None and turn.started is not None
    assert 0.25 <= turn.started - result.greeting_at <= 0.45  # 0.3 s into the 1.5 s greeting
    plain = await sim(port).run([Turn("audio", "after the greeting", pcm=words)])
    assert plain.greeting_at is not None and plain.turns[0].started is not None
    assert plain.turns[0].started - plain.greeting_at >= 1.5

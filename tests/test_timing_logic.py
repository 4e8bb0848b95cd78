"""Timing logic on a controllable clock: end of utterance, barge-in threshold, the pacer's schedule."""

from __future__ import annotations

import asyncio

import pytest

from bot.pacer import Pacer
from bot.vad import Endpointer, EndpointerConfig, Event
from telephony.frames import AudioOut
from telephony.pacing import Schedule

F = 0.02  # one frame, seconds


def feed(
    ep: Endpointer, start: float, frames: int, voiced: bool, level: float | None = None
) -> tuple[float, list[tuple[float, Event]]]:
    events = []
    t = start
    for _ in range(frames):
        if level is not None and not voiced:
            ep.quiet(level)
        ev = ep.frame(t, voiced, F, level)
        if ev is not None:
            events.append((t, ev))
        t += F
    return t, events


def test_utterance_opens_after_enough_voiced_frames_and_not_on_a_click() -> None:
    ep = Endpointer(EndpointerConfig(speech_start_s=0.06, start_window_s=0.2))
    t, events = feed(ep, 0.0, 2, True)  # 40 ms: a click
    assert events == [] and not ep.in_utterance
    t, events = feed(ep, t + 0.5, 10, False)
    assert events == []
    t, events = feed(ep, t, 3, True)
    assert [e for _, e in events] == [Event.START]
    assert ep.in_utterance


def test_end_of_utterance_on_silence_frames() -> None:
    ep = Endpointer(EndpointerConfig(trailing_silence_s=0.6))
    t, _ = feed(ep, 0.0, 50, True)  # one second of speech
    last_voice = t - F
    t, events = feed(ep, t, 40, False)
    assert len(events) == 1 and events[0][1] is Event.END
    assert events[0][0] - last_voice == pytest.approx(0.6, abs=F)
    assert not ep.in_utterance


def test_end_of_utterance_on_the_clock_when_no_frames_arrive() -> None:
    """A Local channel sends nothing while the caller is silent: the timer alone must end the utterance."""
    ep = Endpointer(EndpointerConfig(trailing_silence_s=0.6))
    t, _ = feed(ep, 0.0, 25, True)
    last_voice = t - F
    assert ep.tick(last_voice + 0.3) is None
    assert ep.tick(last_voice + 0.59) is None
    assert ep.tick(last_voice + 0.61) is Event.END
    assert ep.tick(last_voice + 0.7) is None  # once


@pytest.mark.parametrize("noise", [None, -120.0, -50.0])
def test_the_vads_hangover_after_the_voice_fades_is_not_speech(noise: float | None) -> None:
    """The WebRTC VAD says "speech" for five frames after the voice has gone (silence on the line, or only
    its noise): the trailing silence runs from the last frame the caller was audible in."""
    ep = Endpointer(EndpointerConfig(trailing_silence_s=0.6, tail_db=35.0))
    t = 0.0
    if noise is not None:
        t, _ = feed(ep, t, 50, False, noise)  # a second of the line before the caller speaks
    t, _ = feed(ep, t, 40, True, -12.0)  # speech
    t, _ = feed(ep, t, 3, True, -40.0)  # fading: 28 dB down, still the caller's voice
    last_voice = t - F
    hangover = -120.0 if noise is None else noise
    t, events = feed(ep, t, 5, True, hangover)
    assert events == []
    t, events = feed(ep, t, 40, False, hangover)
    assert [e for _, e in events] == [Event.END]
    assert events[0][0] - last_voice == pytest.approx(0.6, abs=F / 2)
    assert ep.last_decision is not None and ep.last_decision.silence_s == pytest.approx(0.6, abs=F / 2)


def test_a_quiet_caller_on_a_noisy_line_is_never_taken_for_silence() -> None:
    """The noise estimate can run high (a loud line): speech within 20 dB of the utterance's loudest frame
    counts whatever it says, so a quiet caller is not cut off while still talking."""
    ep = Endpointer(EndpointerConfig(trailing_silence_s=0.6, tail_db=35.0))
    t, _ = feed(ep, 0.0, 50, False, -38.0)  # the line's noise, 2 dB under the caller's voice
    t, _ = feed(ep, t, 10, True, -36.0)
    t, events = feed(ep, t, 60, True, -37.0)  # 1.2 s more of quiet speech
    assert events == [] and ep.in_utterance
    last_voice = t - F
    _, events = feed(ep, t, 40, False, -38.0)
    assert events[0][0] - last_voice == pytest.approx(0.6, abs=F / 2)


def test_without_levels_every_voiced_frame_counts() -> None:
    """A caller of the endpointer that gives no levels keeps the plain rule: the VAD's verdict decides."""
    ep = Endpointer(EndpointerConfig(trailing_silence_s=0.6))
    t, _ = feed(ep, 0.0, 40, True)
    t, _ = feed(ep, t, 5, True)
    last_voice = t - F
    _, events = feed(ep, t, 40, False)
    assert events[0][0] - last_voice == pytest.approx(0.6, abs=F / 2)


def test_a_noisy_line_raises_the_floor_only_slowly() -> None:
    """One loud unvoiced frame (a click) barely moves the noise level; a quieter one lowers it at once."""
    ep = Endpointer()
    ep.quiet(-60.0)
    ep.quiet(-10.0)
    assert ep.noise_db is not None and -60.0 < ep.noise_db < -55.0
    ep.quiet(-70.0)
    assert ep.noise_db == -70.0


def test_utterance_capped_at_max_length() -> None:
    ep = Endpointer(EndpointerConfig(max_utterance_s=2.0))
    _, events = feed(ep, 0.0, 150, True)  # 3 s of non-stop speech
    assert [e for _, e in events] == [Event.START, Event.END, Event.START]


def test_speech_run_grows_for_barge_in() -> None:
    ep = Endpointer()
    feed(ep, 0.0, 20, True)
    assert ep.speech_run_s == pytest.approx(0.4, abs=F)
    ep.reset()
    assert ep.speech_run_s == 0.0


def test_schedule_is_absolute() -> None:
    s = Schedule(t0=100.0)
    assert s.due(0) == 100.0
    assert s.due(50) == pytest.approx(101.0)
    assert s.frames_due(99.9) == 0
    assert s.frames_due(100.0) == 1
    assert s.frames_due(100.999) == 50
    assert s.frames_due(101.0) == 51


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_pacer_frames_silence_and_clear_on_fake_clock() -> None:
    clock = FakeClock()
    sent: list[bytes] = []

    async def fake_sleep(delay: float) -> None:
        clock.t += max(delay, 0.0)
        await asyncio.sleep(0)  # real yield, no real waiting

    pacer = Pacer(lambda pcm, rate: sent.append(pcm), 8000, clock=clock, sleep=fake_sleep)
    pacer.enqueue(AudioOut(b"\x01\x00" * 720, 8000))  # 90 ms -> 5 frames (the last one padded)
    assert pacer.queued_ms == 100
    task = asyncio.create_task(pacer.run())
    while len(sent) < 8:
        await asyncio.sleep(0)
    task.cancel()
    assert all(len(f) == 320 for f in sent)
    assert sent[:4] == [b"\x01\x00" * 160] * 4
    assert sent[4] == b"\x01\x00" * 80 + bytes(160)
    assert sent[5:8] == [bytes(320)] * 3  # silence when idle
    assert pacer.voice_frames_sent == 5
    # One frame per 20 ms of clock: 8 frames span 140 ms after the first.
    assert clock.t - pacer.started_at == pytest.approx(0.14, abs=0.021)  # type: ignore[operator]
    pacer.enqueue(AudioOut(bytes(3200), 8000))
    assert pacer.clear() == 200 and not pacer.speaking


async def test_pacer_restarts_schedule_after_a_stall_instead_of_bursting() -> None:
    clock = FakeClock()
    sent: list[float] = []
    stalled = False

    async def fake_sleep(delay: float) -> None:
        nonlocal stalled
        clock.t += max(delay, 0.0)
        if len(sent) == 5 and not stalled:
            stalled = True
            clock.t += 1.0  # the loop was blocked for a second
        await asyncio.sleep(0)

    pacer = Pacer(lambda pcm, rate: sent.append(clock.t), 8000, clock=clock, sleep=fake_sleep, max_lag_s=0.2)
    task = asyncio.create_task(pacer.run())
    while len(sent) < 12:
        await asyncio.sleep(0)
    task.cancel()
    # After the stall no burst of 50 catch-up frames: at most one frame per clock instant.
    assert len(sent) == len(set(sent))

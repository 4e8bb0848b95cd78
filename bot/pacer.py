"""Outbound audio at real time: one 20 ms frame every 20 ms, silence whenever there is nothing to say.

Asterisk does not re-time what it receives, and ``AudioSocket()`` gives up after 2 s in which neither side
sent anything, so the pacer sends a frame on every tick of an absolute schedule (``t0 + n * 20 ms``; no drift
from sleep overshoot) for the whole call. Only frames already due are written, so the lead over real time
stays under one frame and :meth:`Pacer.clear` (barge-in) silences the bot within 20 ms. If the loop stalls
for longer than ``max_lag_s`` the schedule restarts rather than bursting the backlog at the caller.

Every frame sent is noted in :attr:`Pacer.reference` (its energy, for the echo gate of barge-in), and
:meth:`Pacer.hold` pauses the voice (silence goes out, the queue is kept) while a possible interruption is
being confirmed: :meth:`Pacer.release` resumes where it stopped, :meth:`Pacer.clear` drops the rest.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

from bot.audio import resample
from bot.turntaking import EchoReference
from telephony.frames import FRAME_MS, AudioOut, frame_bytes
from telephony.pacing import Schedule

log = logging.getLogger(__name__)


class Pacer:
    """Per-call outbound audio queue and the task that drains it at real time."""

    def __init__(
        self,
        send: Callable[[bytes, int], None],
        rate: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_lag_s: float = 0.2,
        reference: EchoReference | None = None,
    ) -> None:
        self._send = send
        self.rate = rate
        """Outbound sample rate, Hertz."""
        self._clock = clock
        self._sleep = sleep
        self._max_lag_s = max_lag_s
        self._queue: collections.deque[bytes] = collections.deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self.frames_sent = 0
        self.voice_frames_sent = 0
        self.started_at: float | None = None
        self.on_voice_start: Callable[[float], None] | None = None
        """Called with the clock time when the first frame of a new utterance goes out."""
        self._was_voice = False
        self.reference = reference or EchoReference()
        """What was just sent, for the echo gate."""
        self.held = False
        """The voice is paused (silence goes out; the queue is kept)."""

    @property
    def speaking(self) -> bool:
        """Bot audio is queued or playing."""
        return bool(self._queue)

    @property
    def queued_ms(self) -> int:
        """Milliseconds of bot audio still to play."""
        return len(self._queue) * FRAME_MS

    def enqueue(self, audio: AudioOut) -> None:
        """Queue audio, cut into 20 ms frames (the last one padded with silence)."""
        pcm = audio.pcm if audio.rate == self.rate else resample(audio.pcm, audio.rate, self.rate)
        size = frame_bytes(self.rate)
        for i in range(0, len(pcm), size):
            chunk = pcm[i : i + size]
            if len(chunk) < size:
                chunk += b"\0" * (size - len(chunk))
            self._queue.append(chunk)
        if self._queue:
            self._idle.clear()

    def hold(self) -> None:
        """Pause the voice from the next frame on, keeping what is queued (a possible barge-in)."""
        self.held = True

    def release(self) -> None:
        """Resume a held voice where it stopped."""
        self.held = False

    def clear(self) -> int:
        """Drop everything queued (barge-in). Returns the milliseconds dropped."""
        dropped = len(self._queue) * FRAME_MS
        self.held = False
        self._queue.clear()
        self._idle.set()
        return dropped

    async def drained(self) -> None:
        """Wait until everything queued has been sent."""
        await self._idle.wait()

    def set_rate(self, rate: int) -> None:
        """Follow the carrier's rate (first inbound audio decides); queued audio is re-cut."""
        if rate == self.rate:
            return
        old = b"".join(self._queue)
        self._queue.clear()
        prev, self.rate = self.rate, rate
        if old:
            self.enqueue(AudioOut(old, prev))

    async def run(self) -> None:
        """Send frames until cancelled."""
        schedule = Schedule(self._clock())
        self.started_at = schedule.t0
        n = 0
        while True:
            now = self._clock()
            if now - schedule.due(n) > self._max_lag_s:
                log.warning(
                    "outbound audio fell %.0f ms behind; restarting the schedule",
                    (now - schedule.due(n)) * 1000,
                )
                schedule = Schedule(now)
                n = 0
            while schedule.due(n) <= self._clock():
                self._send_one()
                n += 1
            await self._sleep(max(0.0, schedule.due(n) - self._clock()))

    def _send_one(self) -> None:
        if self._queue and not self.held:
            frame = self._queue.popleft()
            if not self._was_voice:
                self._was_voice = True
                if self.on_voice_start is not None:
                    self.on_voice_start(self._clock())
            self.voice_frames_sent += 1
            if not self._queue:
                self._idle.set()
        else:
            frame = b"\0" * frame_bytes(self.rate)
            self._was_voice = False
        self._send(frame, self.rate)
        self.reference.sent(self._clock(), frame)
        self.frames_sent += 1

"""Listening: caller audio to finished utterances, for one call.

::

    AudioIn ──▶ WebRTC VAD ──▶ Endpointer (clock) ──▶ ASR queue ──▶ worker thread: Vosk ──▶ on_heard
                                   │ speech while the bot talks ──────────────────────────▶ on_voice

Only utterance audio is decoded (plus ``PREROLL_FRAMES`` from just before speech was detected, so the first
syllable is not lost). Vosk runs in the executor's threads, never on the event loop; the loop only queues
audio. End of utterance runs on the clock (:meth:`Listener.tick`), because a silent Local channel sends no
frames at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from bot.asr import AsrError, AsrStream, AsrUpdate, VoskEngine
from bot.audio import StreamResampler
from bot.vad import Endpointer, EndpointerConfig, Event, WebRtcVad
from telephony.frames import AudioIn, Transcript

log = logging.getLogger(__name__)

PREROLL_FRAMES = 15
"""Audio kept from before speech was detected (15 x 20 ms), so the first syllable reaches the recogniser."""

_FLUSH = object()
"""Queue marker: the endpointer ended the utterance; make the recogniser finish it."""


class Listener:
    """VAD, endpointing and recognition for one call; reports through two callbacks.

    ``on_heard(transcript, end_of_speech)`` — a finished utterance and when the caller stopped speaking;
    ``on_voice()`` — evidence the caller is speaking right now (a recogniser partial, or, without a
    recogniser, ``barge_in_s`` of voiced audio): the session stops the bot if it is talking.
    """

    def __init__(
        self,
        asr: VoskEngine | None,
        executor: Executor | None,
        config: EndpointerConfig,
        *,
        clock: Callable[[], float],
        on_heard: Callable[[Transcript, float], None],
        on_voice: Callable[[], None],
    ) -> None:
        self._asr = asr
        self._executor = executor
        self._config = config
        self._clock = clock
        self._on_heard = on_heard
        self._on_voice = on_voice
        self._vad = WebRtcVad()
        self._endpointer = Endpointer(config)
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=PREROLL_FRAMES)
        self._to_16k = StreamResampler(16000)
        """For the rare carrier rates the VAD does not take (12, 24, 44.1, 96, 192 kHz)."""
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._utterance_end = 0.0
        self.last_heard_at = clock()
        """When the caller last finished an utterance (or the call began)."""

    @property
    def in_utterance(self) -> bool:
        """The caller is speaking (an utterance is open)."""
        return self._endpointer.in_utterance

    def audio(self, frame: AudioIn, now: float) -> None:
        """One frame of caller audio, on the loop: classify, endpoint, queue for the recogniser."""
        pcm, rate = frame.pcm, frame.rate
        if rate not in WebRtcVad.RATES:
            pcm, rate = self._to_16k(pcm, rate), 16000
        event = self._endpointer.frame(now, self._vad.is_speech(pcm, rate), frame.duration_ms / 1000)
        self._preroll.append(pcm)
        if event is Event.START:
            self._feed(b"".join(self._preroll), rate)
            self._preroll.clear()
        elif self._endpointer.in_utterance:
            self._feed(pcm, rate)
        elif event is Event.END:
            self._ended(now)
        if self._asr is None and self._endpointer.speech_run_s >= self._config.barge_in_s:
            self._on_voice()

    def tick(self, now: float) -> None:
        """Timer: end the utterance after trailing silence even when no frames arrive."""
        if self._endpointer.tick(now) is Event.END:
            self._ended(now)

    async def run(self) -> None:
        """Decode queued audio in the executor until cancelled (only when there is a recogniser)."""
        stream: AsrStream | None = None
        if self._asr is not None:
            try:
                stream = await self._in_worker(self._asr.stream)
            except AsrError:
                log.exception("recogniser unavailable for this call; keypad only")
                self._asr = None
        if stream is None:
            await asyncio.Event().wait()
            return
        try:
            while True:
                await self._decode(stream, await self._drain())
        finally:
            with contextlib.suppress(Exception):
                await self._in_worker(stream.close)

    # ------------------------------------------------------------------------------------------------

    def _feed(self, pcm: bytes, rate: int) -> None:
        if self._asr is not None:
            self._queue.put_nowait((pcm, rate))

    def _ended(self, now: float) -> None:
        self._utterance_end = now
        self.last_heard_at = now
        if self._asr is not None:
            self._queue.put_nowait(_FLUSH)

    async def _drain(self) -> list[Any]:
        """Everything queued, waiting for at least one item."""
        batch = [await self._queue.get()]
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _decode(self, stream: AsrStream, batch: list[Any]) -> None:
        """Feed a batch in as few worker calls as possible: consecutive audio of one rate is joined."""
        pending: list[bytes] = []
        rate = 0
        for entry in [*batch, None]:
            if isinstance(entry, tuple) and rate in (0, entry[1]):
                pending.append(entry[0])
                rate = entry[1]
                continue
            if pending:
                self._on_update(await self._in_worker(stream.accept, b"".join(pending), rate))
                pending, rate = [], 0
            if isinstance(entry, tuple):
                pending, rate = [entry[0]], entry[1]
            elif entry is _FLUSH:
                self._on_update(await self._in_worker(stream.flush))

    def _on_update(self, update: AsrUpdate) -> None:
        if update.partial:
            self._on_voice()
        if update.final:
            now = self._clock()
            ended = self._utterance_end and not self._endpointer.in_utterance
            end_of_speech = self._utterance_end if ended else now
            self._endpointer.reset()
            self.last_heard_at = now
            self._on_heard(Transcript(update.final, update.confidence, "asr"), end_of_speech)

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

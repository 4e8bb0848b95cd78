"""Listening: caller audio to finished utterances, for one call.

::

    AudioIn ──▶ WebRTC VAD + echo gate ──▶ Endpointer (clock) ──▶ ASR queue ──▶ worker: Vosk ──▶ on_heard
                                   ▲    │ speech while the bot talks ─▶ on_pause ─▶ on_barge_in | on_resume
                    partials ──────┘    (adaptive end of turn, ``bot/turntaking.py``)

Only utterance audio is decoded (plus ``PREROLL_FRAMES`` from just before speech was detected, so the first
syllable is not lost). Vosk runs in the executor's threads, never on the event loop; the loop only queues
audio. End of utterance runs on the clock (:meth:`Listener.tick`), because a silent Local channel sends no
frames at all.

In adaptive mode the endpointer, not Vosk's own endpointer, ends a turn: a Vosk final that comes while the
utterance is still open (the caller paused mid-sentence) is held and joined with what follows.

Barge-in: while the bot talks, a frame is voiced only if it is louder than the bot's echo could be
(:class:`bot.turntaking.EchoReference`). An utterance opened over the bot pauses its voice at once
(``on_pause``); it is confirmed (``on_barge_in``: the queued voice is dropped) by words that are not a
backchannel, or by speech lasting ``barge_in_s`` (no recogniser) / ``backchannel_max_s``; an utterance that
ends unconfirmed resumes the voice (``on_resume``) and a backchannel is not a turn.

Commit at the decision (``commit_early``, :mod:`bot.speculation`): when the endpointer ends a turn on a
complete stable partial that the speculation says may be sent at once, ``on_heard`` gets those words at
the decision; the recogniser's final result of that utterance, which comes after its flush, is only
compared (``on_final``), never sent a second time.
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
from bot.turntaking import AdaptivePolicy, EchoReference, TurnWords, frame_db
from bot.vad import Decision, Endpointer, EndpointerConfig, Event, WebRtcVad
from telephony.frames import AudioIn, Transcript

log = logging.getLogger(__name__)

PREROLL_FRAMES = 15
"""Audio kept from before speech was detected (15 x 20 ms), so the first syllable reaches the recogniser."""

_FLUSH = object()
"""Queue marker: the endpointer ended the utterance; make the recogniser finish it."""


class Listener:
    """VAD, endpointing and recognition for one call; reports through two callbacks.

    ``on_heard(transcript, end_of_speech)`` — a finished utterance and when the caller stopped speaking;
    ``on_voice()`` — a confirmed interruption: the session stops the bot if it is talking.
    ``talking()`` says whether the bot is talking; ``on_pause`` / ``on_resume`` hold and resume its voice
    while an interruption is unconfirmed (see the module docstring).
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
        words: TurnWords | None = None,
        reference: EchoReference | None = None,
        talking: Callable[[], bool] = lambda: False,
        on_pause: Callable[[], object] = lambda: None,
        on_resume: Callable[[], None] = lambda: None,
    ) -> None:
        self._asr = asr
        self._executor = executor
        self._config = config
        self._clock = clock
        self._on_heard = on_heard
        self._on_voice = on_voice
        self._vad = WebRtcVad()
        self.words = words or TurnWords()
        self.policy = AdaptivePolicy(config, self.words) if config.mode == "adaptive" else None
        self._endpointer = Endpointer(config, self.policy)
        self._reference = reference
        self._talking = talking
        self._on_pause = on_pause
        self._on_resume = on_resume
        self._held: list[str] = []
        """Vosk finals of the open utterance (adaptive mode: the caller paused, then went on)."""
        self._over_bot = False
        """The open (or just ended, not yet decoded) utterance began while the bot was talking."""
        self._confirmed = False
        """...and it was confirmed as an interruption."""
        self.gated = 0
        """Frames the VAD called speech that were too quiet to be more than the bot's echo."""
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=PREROLL_FRAMES)
        self._to_16k = StreamResampler(16000)
        """For the rare carrier rates the VAD does not take (12, 24, 44.1, 96, 192 kHz)."""
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._utterance_end = 0.0
        self.commit_early: Callable[[str], bool] | None = None
        """Whether a turn ending now on these words may be sent at once (the speculation's say)."""
        self.on_final: Callable[[str, str], None] = lambda committed, final: None
        """The recogniser's final of a turn committed early: (words committed, final words)."""
        self._committed: str | None = None
        """Words sent at the decision, whose recogniser final is still to come."""
        self._committed_finals: list[str] = []
        self.sent_early = False
        """The last utterance was sent at the decision (before the recogniser's final)."""
        self.last_heard_at = clock()
        """When the caller last finished an utterance (or the call began)."""
        self._flushes: collections.deque[float | None] = collections.deque()
        """One entry per end of utterance whose recogniser result is still to come: when it was decided, or
        ``None`` when nobody waits for it (sent at the decision, or an unconfirmed sound over the bot)."""

    @property
    def expecting(self) -> str:
        """What the dialogue is waiting for (``digits``, ``date``, ``address``, ``free``)."""
        return self._endpointer.expecting

    @expecting.setter
    def expecting(self, kind: str) -> None:
        self._endpointer.expecting = kind

    @property
    def last_decision(self) -> Decision | None:
        """Why the last utterance ended (rule, silence waited)."""
        return self._endpointer.last_decision

    @property
    def awaiting_since(self) -> float | None:
        """When the caller finished a turn whose words the recogniser has not delivered yet (it lags under
        load); ``None`` when no such turn is waiting."""
        return next((t for t in self._flushes if t is not None), None)

    @property
    def in_utterance(self) -> bool:
        """The caller is speaking (an utterance is open)."""
        return self._endpointer.in_utterance

    def audio(self, frame: AudioIn, now: float) -> None:
        """One frame of caller audio, on the loop: classify, endpoint, queue for the recogniser."""
        pcm, rate = frame.pcm, frame.rate
        if rate not in WebRtcVad.RATES:
            pcm, rate = self._to_16k(pcm, rate), 16000
        voiced = self._vad.is_speech(pcm, rate)
        level = frame_db(frame.pcm)
        if not voiced:
            if not self._talking():
                self._endpointer.quiet(level)
        elif self._reference is not None and not self._reference.above_echo(now, frame.pcm, level):
            voiced = False
            self.gated += 1
        event = self._endpointer.frame(now, voiced, frame.duration_ms / 1000, level)
        self._preroll.append(pcm)
        if event is Event.START:
            self._feed(b"".join(self._preroll), rate, now)
            self._preroll.clear()
            self._opened()
        elif self._endpointer.in_utterance:
            self._feed(pcm, rate, now)
        elif event is Event.END:
            self._ended(now)
        self._check_barge_in()

    def tick(self, now: float) -> None:
        """Timer: end the utterance after trailing silence even when no frames arrive."""
        if self._endpointer.tick(now) is Event.END:
            self._ended(now)

    def _opened(self) -> None:
        self._held.clear()
        self._over_bot = self._talking()
        self._confirmed = False
        if self._over_bot:
            self._on_pause()

    def _check_barge_in(self) -> None:
        """Confirm an interruption: words that are not a backchannel, or speech going on long enough."""
        if self._asr is None:
            if self._endpointer.speech_run_s >= self._config.barge_in_s:
                self._confirm()
            return
        if not self._endpointer.in_utterance or self._confirmed:
            return
        if not self._over_bot:
            if not self._talking():
                return
            self._over_bot = True  # the bot began to talk while the caller was speaking
            self._on_pause()
        words = self._endpointer.partial
        if (words and not self.words.is_backchannel(words)) or (
            self._endpointer.speech_run_s >= self._config.backchannel_max_s
        ):
            self._confirm()

    def _confirm(self) -> None:
        self._confirmed = True
        self._on_voice()

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

    def _feed(self, pcm: bytes, rate: int, at: float) -> None:
        if self._asr is not None:
            self._queue.put_nowait((pcm, rate, at))

    def _ended(self, now: float) -> None:
        self._utterance_end = now
        self.last_heard_at = now
        if self._asr is not None:
            self._queue.put_nowait(_FLUSH)
            sent = self._commit_early(now)
            unconfirmed = self._over_bot and not self._confirmed
            self._flushes.append(None if sent or unconfirmed else now)
        elif self._over_bot and not self._confirmed:
            self._over_bot = False
            self._on_resume()

    def _commit_early(self, now: float) -> bool:
        """At the decision: send the stable partial at once if the speculation vouches for it (not while an
        interruption of the bot is unconfirmed: a backchannel is no turn). Whether it was sent."""
        decision = self._endpointer.last_decision
        words = self._endpointer.last_partial.strip()
        if (
            self.commit_early is None
            or decision is None
            or decision.rule != "complete"
            or not words
            or (self._over_bot and not self._confirmed)
            or not self.commit_early(words)
        ):
            return False
        self._committed = words
        self._committed_finals = list(self._held)
        self._held.clear()
        self._over_bot = False
        self.sent_early = True
        self._on_heard(Transcript(words, None, "asr"), now)
        return True

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
        upto = 0.0
        for entry in [*batch, None]:
            if isinstance(entry, tuple) and rate in (0, entry[1]):
                pending.append(entry[0])
                rate, upto = entry[1], entry[2]
                continue
            if pending:
                self._on_update(await self._in_worker(stream.accept, b"".join(pending), rate), upto)
                pending, rate = [], 0
            if isinstance(entry, tuple):
                pending, rate, upto = [entry[0]], entry[1], entry[2]
            elif entry is _FLUSH:
                self._on_update(await self._in_worker(stream.flush), upto, flushed=True)

    def _on_update(self, update: AsrUpdate, covers: float, *, flushed: bool = False) -> None:
        """A recogniser result for audio up to time ``covers``; ``flushed``: the endpointer ended the turn."""
        if flushed and self._flushes:
            self._flushes.popleft()
        if self._committed is not None:
            # Everything decoded up to the flush belongs to the utterance already sent at the decision.
            if update.final:
                self._committed_finals.append(update.final)
            if flushed:
                committed, self._committed = self._committed, None
                final = " ".join(self._committed_finals).strip()
                self._committed_finals.clear()
                self.on_final(committed, final)
            return
        adaptive = self.policy is not None
        if update.final and adaptive and not flushed and self._endpointer.in_utterance:
            self._held.append(update.final)  # Vosk's endpointer fired on a pause; the turn goes on
            self._endpointer.hear(" ".join(self._held), covers)
            self._check_barge_in()
            return
        if update.partial:
            self._endpointer.hear(" ".join([*self._held, update.partial]), covers)
            self._check_barge_in()
        if not (update.final or (flushed and self._held)):
            if flushed and self._over_bot and not self._confirmed:
                self._over_bot = False
                self._on_resume()  # nothing was said over the bot after all
            return
        text = " ".join([*self._held, update.final or ""]).strip()
        confidence = update.confidence
        self._held.clear()
        now = self._clock()
        if not flushed and self._endpointer.in_utterance:  # Vosk's own endpointer ended it (fixed mode)
            silence = round(self._endpointer.silence_at(now), 3)
            self._endpointer.last_decision = Decision("recogniser", silence)
        ended = self._utterance_end and not self._endpointer.in_utterance
        end_of_speech = self._utterance_end if ended else now
        self._endpointer.reset()
        self.last_heard_at = now
        over_bot, self._over_bot = self._over_bot, False
        if over_bot and not self._confirmed:
            if self.words.is_backchannel(text):
                self._on_resume()
                return
            self._confirm()
        self.sent_early = False
        self._on_heard(Transcript(text, confidence, "asr"), end_of_speech)

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

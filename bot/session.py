"""One call, from the UUID frame to the hangup: listen, understand, answer — and always end with a person or a
clear goodbye.

Inside a call, the event loop only moves frames and decisions; decoding and synthesis run in worker threads::

    inbound frames ──▶ VAD + endpointer (clock) ──▶ ASR queue ──▶ worker: Vosk ──▶ transcripts ─┐
    DTMF / injected text ─────────────────────────────────────────────────────────────────────┤
    timers (end of utterance, keypad, no input, call limit) ───────────────────────────────────┤
                                                                                              ▼
    pacer (20 ms frames, silence when idle) ◀── speech (worker: Piper) ◀── dialogue (Rasa) ◀── inputs

How a call ends, and what the dialplan does next (via the outcome in Redis):

- the assistant says goodbye (``end_call``)                        → ``completed``, hang up
- the assistant asks for a person (``handoff``)                    → ``handoff``, queue by skill
- Rasa unreachable, times out or errors; synthesis fails           → ``handoff`` reason ``technical``
- the caller says nothing after the reprompts                      → ``completed`` reason ``no-input``
- the call passes its time limit                                   → ``handoff`` reason ``too-long``
- the caller hangs up                                              → ``abandoned``
- anything unexpected inside the gateway                           → ``failed`` (the dialplan queues)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.asr import AsrError, AsrStream, AsrUpdate, VoskEngine
from bot.audio import StreamResampler
from bot.calls import CallRecord
from bot.config import GatewayConfig
from bot.dialogue import Dialogue, DialogueError, Reply
from bot.pacer import Pacer
from bot.prompts import Prompts
from bot.tts import Speech
from bot.vad import Endpointer, EndpointerConfig, Event, WebRtcVad
from telephony.audiosocket import audio_rate
from telephony.frames import AudioIn, Dtmf, Hangup, InboundFrame, PeerError, Transcript

log = logging.getLogger(__name__)

KEYPAD_SINGLE_KEY_S = 1.5
"""A lone key with nothing after it for this long is a menu choice."""
KEYPAD_SEQUENCE_S = 3.0
"""Digits followed by this much quiet are sent as typed (no '#' needed)."""
TICK_S = 0.05
RATE_WAIT_S = 0.5
"""A call whose rate was not registered waits this long for the caller's first frame (whose kind tells the
rate) before the bot starts sending at 8 kHz: far inside the 2 s after which ``AudioSocket()`` gives up."""
PREROLL_FRAMES = 15
"""Audio kept from before speech was detected (15 x 20 ms), so the first syllable reaches the recogniser."""


def caller_line(text: str, source: str, *, redacted: bool) -> str:
    """What the transcript keeps of a caller turn: never typed digits, never a secret."""
    if source == "dtmf" and not text.startswith("/"):
        return "[keypad]"
    return "[redacted]" if redacted else text


class Outbound(Protocol):
    """What the telephony edge lets a session send."""

    def send_audio(self, pcm: bytes, rate: int) -> None: ...

    def send_hangup(self) -> None: ...

    def send_error(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Control:
    kind: str  # "no-input" | "too-long"


_FLUSH = object()


@dataclass
class TurnTiming:
    """Latency marks of one caller turn, clock seconds."""

    source: str
    end_of_speech: float
    transcript_at: float | None = None
    reply_at: float | None = None
    first_audio_at: float | None = None

    def as_ms(self) -> dict[str, float | None]:
        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - self.end_of_speech) * 1000, 1)

        return {
            "asr": ms(self.transcript_at),
            "rasa": ms(self.reply_at),
            "first_audio": ms(self.first_audio_at),
        }


@dataclass
class SessionDeps:
    """Shared, long-lived parts a session borrows."""

    speech: Speech
    dialogue: Dialogue
    prompts: Prompts
    redis: Any
    asr: VoskEngine | None = None
    asr_executor: Executor | None = None
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    clock: Callable[[], float] = time.monotonic
    on_end: Callable[[CallSession], object] | None = None
    """Called once the call has ended and its outcome is recorded."""


class CallSession:
    """A single call."""

    def __init__(self, call_id: str, out: Outbound, deps: SessionDeps, config: GatewayConfig) -> None:
        self.call_id = call_id
        self._out = out
        self._d = deps
        self._cfg = config
        self._clock = deps.clock
        self.record = CallRecord(deps.redis, call_id)
        self.pacer = Pacer(out.send_audio, 8000, clock=deps.clock)
        self.pacer.on_voice_start = self._on_voice_start
        self._inputs: asyncio.Queue[Transcript | _Control] = asyncio.Queue()
        self._asr_q: asyncio.Queue[Any] = asyncio.Queue()
        self._done = asyncio.Event()
        self._finishing = False
        self._rate_known = False
        self._first_audio = asyncio.Event()
        self._vad = WebRtcVad()
        self._endpointer = Endpointer(deps.endpointer)
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=PREROLL_FRAMES)
        self._to_16k = StreamResampler(16000)
        """For the rare carrier rates the VAD does not take (12, 24, 44.1, 96, 192 kHz)."""
        self._keys = ""
        self._last_key_at = 0.0
        self._busy = False
        self._last_activity = self._clock()
        self._no_input_count = 0
        self._limit_reached = False
        self._started = self._clock()
        self._epoch = 0
        self._utterance_end = 0.0
        self._pending_timing: TurnTiming | None = None
        self._timing_open: TurnTiming | None = None
        self.timings: list[TurnTiming] = []
        self.turns = 0
        self.outcome = "failed"
        self.reason = ""
        self.skill = ""
        self.context: dict[str, Any] = {}
        self.info: dict[str, str] = {}
        self.barge_ins = 0

    # ------------------------------------------------------ inbound (called by the edge, on the loop)

    def on_frame(self, frame: InboundFrame) -> None:
        """The one entry point from the telephony edge."""
        if isinstance(frame, AudioIn):
            self._on_audio(frame)
        elif isinstance(frame, Dtmf):
            self._on_dtmf(frame)
        elif isinstance(frame, Transcript):
            self._on_injected(frame)
        elif isinstance(frame, Hangup):
            self._on_hangup()
        elif isinstance(frame, PeerError):
            self._on_peer_error(frame)

    def _on_audio(self, frame: AudioIn) -> None:
        """Caller audio."""
        now = self._clock()
        if not self._rate_known:
            # The carrier's own frames are the truth (an older Asterisk labels everything 0x10).
            self._rate_known = True
            self._first_audio.set()
            if frame.rate != self.pacer.rate:
                if self.pacer.started_at is not None:
                    log.info("call %s: caller audio at %d Hz; following it", self.call_id, frame.rate)
                self.pacer.set_rate(frame.rate)
        pcm, rate = frame.pcm, frame.rate
        if rate not in WebRtcVad.RATES:
            pcm, rate = self._to_16k(pcm, rate), 16000
        event = self._endpointer.frame(now, self._vad.is_speech(pcm, rate), frame.duration_ms / 1000)
        self._preroll.append(pcm)
        if event is Event.START:
            self._asr_feed(b"".join(self._preroll), rate)
            self._preroll.clear()
        elif self._endpointer.in_utterance:
            self._asr_feed(pcm, rate)
        elif event is Event.END:
            self._end_of_utterance(now)
        if (
            self._d.asr is None
            and self.pacer.speaking
            and self._endpointer.speech_run_s >= self._d.endpointer.barge_in_s
        ):
            self._barge_in()

    def _on_dtmf(self, key: Dtmf) -> None:
        """A keypad press: stops the bot talking, collects digits."""
        self._barge_in()
        self._last_activity = self._clock()
        if key.digit == "#":
            self._flush_keys()
            return
        self._keys += key.digit
        self._last_key_at = self._clock()

    def _on_injected(self, frame: Transcript) -> None:
        """Text injected after the recogniser (simulator, tests); the edge decided it is allowed."""
        self._barge_in()
        now = self._clock()
        self._pending_timing = TurnTiming("inject", now, transcript_at=now)
        self._inputs.put_nowait(Transcript(frame.text.strip(), source="inject"))

    def _on_hangup(self) -> None:
        """The caller hung up (hangup frame or the socket closed)."""
        if not self._finishing:
            self.outcome, self.reason = "abandoned", "caller-hangup"
        self._done.set()

    def _on_peer_error(self, frame: PeerError) -> None:
        """Asterisk reported an error on the channel (or broke the protocol)."""
        log.warning("call %s: peer reported error %s", self.call_id, frame.code)
        if not self._finishing:
            self.outcome, self.reason = "failed", "peer-error"
        self._done.set()

    # ---------------------------------------------------------------- the call

    async def run(self) -> None:
        """Run the call to its end; always leaves an outcome in Redis."""
        self.info = await self.record.start()
        await self._decide_rate()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.pacer.run(), name=f"pacer-{self.call_id}"),
            asyncio.create_task(self._ticker(), name=f"ticker-{self.call_id}"),
            asyncio.create_task(self._dialogue_loop(), name=f"dialogue-{self.call_id}"),
        ]
        stream: AsrStream | None = None
        if self._d.asr is not None:
            try:
                stream = await self._in_worker(self._d.asr.stream)
                tasks.append(asyncio.create_task(self._asr_loop(stream), name=f"asr-{self.call_id}"))
            except AsrError:
                log.exception("call %s: recogniser unavailable; keypad only", self.call_id)
        watch: list[asyncio.Task[Any]] = [asyncio.create_task(self._done.wait())]
        try:
            done, _ = await asyncio.wait(watch + tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in tasks and not task.cancelled() and task.exception() is not None:
                    log.error("call %s: %s crashed", self.call_id, task.get_name(), exc_info=task.exception())
                    self.outcome, self.reason = "failed", "internal"
                    with contextlib.suppress(Exception):
                        self._out.send_hangup()
        finally:
            for task in tasks + watch:
                task.cancel()
            await asyncio.gather(*tasks, *watch, return_exceptions=True)
            if stream is not None:
                with contextlib.suppress(Exception):
                    await self._in_worker(stream.close)
            await self.record.finish(
                self.outcome, reason=self.reason, skill=self.skill, turns=self.turns, context=self.context
            )
            if self._d.on_end is not None:
                self._d.on_end(self)
            log.info(
                "call %s ended: outcome=%s reason=%s turns=%d barge_ins=%d frames_out=%d",
                self.call_id,
                self.outcome,
                self.reason,
                self.turns,
                self.barge_ins,
                self.pacer.frames_sent,
            )

    async def _decide_rate(self) -> None:
        """Know the call's rate before the first frame goes out: the rate the dialplan registered (it knows
        whether it asked for ``c(slin16)``), else the kind of the caller's first frame, else 8 kHz."""
        registered = audio_rate(self.info.get("rate"))
        if registered is not None and not self._rate_known:
            self.pacer.set_rate(registered)
            return
        if not self._rate_known:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._first_audio.wait(), RATE_WAIT_S)

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._d.asr_executor, fn, *args)

    # ---------------------------------------------------------------- listening

    def _asr_feed(self, pcm: bytes, rate: int) -> None:
        if self._d.asr is not None:
            self._asr_q.put_nowait((pcm, rate))

    def _end_of_utterance(self, now: float) -> None:
        self._utterance_end = now
        self._last_activity = now
        if self._d.asr is not None:
            self._asr_q.put_nowait(_FLUSH)

    async def _asr_loop(self, stream: AsrStream) -> None:
        while True:
            item = await self._asr_q.get()
            batch = [item]
            while not self._asr_q.empty():
                batch.append(self._asr_q.get_nowait())
            pending: list[bytes] = []
            rate = 0
            for entry in [*batch, None]:
                if isinstance(entry, tuple) and (rate in (0, entry[1])):
                    pending.append(entry[0])
                    rate = entry[1]
                    continue
                if pending:
                    self._on_asr(await self._in_worker(stream.accept, b"".join(pending), rate))
                    pending, rate = [], 0
                if isinstance(entry, tuple):
                    pending, rate = [entry[0]], entry[1]
                elif entry is _FLUSH:
                    self._on_asr(await self._in_worker(stream.flush))

    def _on_asr(self, update: AsrUpdate) -> None:
        if update.partial and self.pacer.speaking:
            self._barge_in()
        if update.final:
            now = self._clock()
            eos = self._utterance_end if self._utterance_end and not self._endpointer.in_utterance else now
            self._endpointer.reset()
            self._pending_timing = TurnTiming("asr", eos, transcript_at=now)
            self._last_activity = now
            self._inputs.put_nowait(Transcript(update.final, update.confidence, "asr"))

    def _barge_in(self) -> None:
        if self.pacer.speaking:
            dropped = self.pacer.clear()
            self._epoch += 1
            self.barge_ins += 1
            log.info("call %s: barge-in, %d ms of bot audio dropped", self.call_id, dropped)

    def _flush_keys(self) -> None:
        keys, self._keys = self._keys, ""
        if not keys:
            return
        intent = self._d.prompts.keypad.get(keys)
        text = f"/{intent}" if intent is not None and len(keys) == 1 else keys
        now = self._clock()
        self._pending_timing = TurnTiming("dtmf", now, transcript_at=now)
        self._inputs.put_nowait(Transcript(text, source="dtmf"))

    async def _ticker(self) -> None:
        """Everything that runs on the clock rather than on frame arrival."""
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            if self._endpointer.tick(now) is Event.END:
                self._end_of_utterance(now)
            if self._keys:
                quiet = now - self._last_key_at
                single = len(self._keys) == 1 and self._keys in self._d.prompts.keypad
                if quiet >= (KEYPAD_SINGLE_KEY_S if single else KEYPAD_SEQUENCE_S):
                    self._flush_keys()
            if self._finishing:
                continue
            if now - self._started >= self._cfg.max_call_s:
                if not self._limit_reached:  # once; the dialogue loop acts on it after the current turn
                    self._limit_reached = True
                    self._inputs.put_nowait(_Control("too-long"))
                continue
            busy = (
                self._busy
                or self.pacer.speaking
                or self._endpointer.in_utterance
                or bool(self._keys)
                or not self._inputs.empty()
            )
            if busy:
                self._last_activity = now
            elif now - self._last_activity >= self._cfg.no_input_s:
                self._last_activity = now
                self._inputs.put_nowait(_Control("no-input"))

    # ---------------------------------------------------------------- deciding and speaking

    def _metadata(self, source: str, confidence: float | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "call_id": self.call_id,
            "caller_number": self.info.get("caller_number") or None,
            "channel": self.info.get("channel") or None,
            "language": self.info.get("language") or "en",
            "input": source,
            "asr_available": self._d.asr is not None,
        }
        if confidence is not None:
            meta["asr_confidence"] = round(confidence, 3)
        return meta

    async def _dialogue_loop(self) -> None:
        await self._turn("/session_start", "system")
        if self._d.asr is None and not self._finishing:
            await self._say_prompt("keypad_menu")
        while not self._finishing:
            item = await self._inputs.get()
            if isinstance(item, _Control):
                await self._control(item)
            elif item.text:
                self._no_input_count = 0
                await self._turn(item.text, item.source, item.confidence)

    async def _control(self, item: _Control) -> None:
        if item.kind == "too-long":
            await self._finish("handoff", "too-long", prompt="too_long")
            return
        self._no_input_count += 1
        if self._no_input_count > self._cfg.no_input_retries:
            await self._finish("completed", "no-input", prompt="no_input_goodbye")
        else:
            await self._say_prompt("no_input")

    async def _turn(self, text: str, source: str, confidence: float | None = None) -> None:
        self._busy = True
        timing, self._pending_timing = self._pending_timing, None
        try:
            if source != "system":
                self.turns += 1
            try:
                reply: Reply = await self._d.dialogue.send(
                    self.call_id, text, self._metadata(source, confidence)
                )
            except DialogueError as exc:
                log.error("call %s: dialogue failed (%s); handing to a person", self.call_id, exc)
                if source != "system":
                    await self.record.say("caller", "[not recorded]")  # it may have held a PIN
                await self._finish("handoff", "technical", prompt="technical")
                return
            if source != "system":
                # Written after the reply: the assistant says whether the words held a secret (a PIN).
                await self.record.say("caller", caller_line(text, source, redacted=reply.input_redacted))
            if timing is not None:
                timing.reply_at = self._clock()
                self.timings.append(timing)
                self._timing_open = timing
            for sentence in reply.texts:
                await self.record.say("bot", sentence)
                await self._speak(sentence)
            if reply.handoff is not None:
                self.context = {k: v for k, v in reply.handoff.items() if k != "reason"}
                await self._finish(
                    "handoff",
                    str(reply.handoff.get("reason") or "requested"),
                    skill=str(reply.handoff.get("skill") or "general"),
                    prompt=None if reply.texts else "handoff",
                )
            elif reply.end_call:
                await self._finish("completed", "goodbye")
        finally:
            self._busy = False
            self._last_activity = self._clock()

    def _on_voice_start(self, at: float) -> None:
        timing, self._timing_open = self._timing_open, None
        if timing is not None and timing.first_audio_at is None:
            timing.first_audio_at = at
            log.info("call %s: turn latency ms %s", self.call_id, json.dumps(timing.as_ms()))

    async def _speak(self, text: str, *, fixed: bool = False) -> None:
        """Synthesise and queue ``text``; stops early on barge-in. A synthesis failure goes to a person."""
        epoch = self._epoch
        try:
            async for audio in self._d.speech.say(text, self.pacer.rate, cache="disk" if fixed else "memory"):
                if self._epoch != epoch or self._done.is_set():
                    break
                self.pacer.enqueue(audio)
        except Exception:
            if self._finishing:
                raise
            log.exception("call %s: speech synthesis failed; handing to a person", self.call_id)
            await self._finish("handoff", "technical")

    async def _say_prompt(self, name: str) -> None:
        """Say one of the gateway's own phrases (``prompts.yml``); like every word the caller hears, it goes
        into the transcript, marked with the prompt's name."""
        text = self._d.prompts[name]
        await self.record.say("bot", text, prompt=name)
        await self._speak(text, fixed=True)

    async def _finish(self, outcome: str, reason: str, *, skill: str = "", prompt: str | None = None) -> None:
        """Say the last words (the prompt named, if any), let them play out, hang up, record the outcome."""
        if self._done.is_set():
            return
        self._finishing = True
        self.outcome, self.reason, self.skill = outcome, reason, skill or self.skill
        if prompt:
            with contextlib.suppress(Exception):
                await self._say_prompt(prompt)
        limit = self.pacer.queued_ms / 1000 + 2.0
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.pacer.drained(), timeout=limit)
        await asyncio.sleep(0.06)  # the last frame goes out before the hangup
        with contextlib.suppress(Exception):
            self._out.send_hangup()
        self._done.set()

"""One call, from the UUID frame to the hangup: listen, understand, answer — and always end with a person or a
clear goodbye.

Inside a call, the event loop only moves frames and decisions; decoding and synthesis run in worker threads::

    on_frame ─┬─ AudioIn ──▶ Listener (VAD, endpointer, Vosk in workers) ──▶ heard ──┐
              ├─ Dtmf ─────▶ Keypad (menu key / typed digits) ─────────────────────┤
              ├─ Transcript (injected after the recogniser) ──────────────────────────┤
              └─ Hangup / PeerError ──▶ the call ends                                 ▼
    timers (end of utterance, keypad, no input, call limit) ─────────────────▶ turn loop ──▶ Dialogue (Rasa)
                                                                                      │
    Pacer (20 ms frames, silence when idle) ◀── Speaker (Piper in a worker) ◀─────────┘

Listening, the keypad and speaking are their own modules (``listening.py``, ``keypad.py``,
``speaking.py``); this one holds the turn loop, the timers and how the call ends.

How a call ends, and what the dialplan does next (via the outcome in Redis, ``telephony/callstate.py``):

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
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from actions.shared.masking import mask_text
from bot.asr import VoskEngine
from bot.calls import CallRecord
from bot.config import GatewayConfig
from bot.dialogue import Dialogue, DialogueError, Reply
from bot.keypad import Keypad
from bot.listening import Listener
from bot.pacer import Pacer
from bot.prompts import Prompts
from bot.routing import choose_route
from bot.speaking import Speaker
from bot.tts import Speech
from bot.vad import EndpointerConfig
from bot.waits import Waits, wait_sentence
from telephony.audiosocket import audio_rate
from telephony.callstate import Outcome, Reason, Route, Skill
from telephony.frames import AudioIn, Dtmf, Hangup, InboundFrame, PeerError, Transcript

log = logging.getLogger(__name__)

TICK_S = 0.05
RATE_WAIT_S = 0.5
"""A call whose rate was not registered waits this long for the caller's first frame (whose kind tells the
rate) before the bot starts sending at 8 kHz: far inside the 2 s after which ``AudioSocket()`` gives up."""


def caller_line(text: str, source: str, *, redacted: bool, heard_as: str | None = None) -> str:
    """What the transcript keeps of a caller turn: never typed digits, never a secret. ``heard_as`` is the
    assistant's masked version of the words, if it masked some; the gateway masks what it can tell on its
    own too (card numbers, codes, PINs and dates said with their keywords), whatever the assistant said."""
    if source == "dtmf" and not text.startswith("/"):
        return "[keypad]"
    if redacted:
        return "[redacted]"
    return mask_text(heard_as if heard_as is not None else text, bare_digits_are_pin=False)


class Outbound(Protocol):
    """What the telephony edge lets a session send."""

    def send_audio(self, pcm: bytes, rate: int) -> None: ...

    def send_hangup(self) -> None: ...

    def send_error(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Control:
    """A timer's decision for the turn loop."""

    reason: Reason
    """``NO_INPUT`` or ``TOO_LONG``."""
    final: bool = False
    """End the call now (no reprompt): the caller never produced a usable turn."""


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
    waits: Waits | None = None
    """The live queue model's estimates; ``None`` without an AMI connection (nothing is said then)."""
    on_end: Callable[[CallSession], object] | None = None
    """Called once the call has ended and its outcome is recorded."""


@dataclass
class CallEnd:
    """How the call ended (what goes to Redis for the dialplan)."""

    outcome: Outcome = Outcome.FAILED
    reason: Reason | None = None
    skill: Skill | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """What the bot learned, for the agent (from the assistant's handoff payload)."""
    route: Route | None = None
    """For a handoff: where the caller waits (chosen at the handoff, with the wait estimate)."""


class CallSession:
    """A single call."""

    def __init__(self, call_id: str, out: Outbound, deps: SessionDeps, config: GatewayConfig) -> None:
        self.call_id = call_id
        self._out = out
        self._d = deps
        self._cfg = config
        self._clock = deps.clock
        self.record = CallRecord(deps.redis, call_id)
        self.info: dict[str, str] = {}
        """What call control registered about the call (caller number, channel, language, rate)."""
        self.end = CallEnd()
        self.turns = 0
        self.frames_in = 0
        """Frames the edge delivered (audio, keys, text)."""
        self.timings: list[TurnTiming] = []
        self.speaker = Speaker(deps.speech, Pacer(out.send_audio, 8000, clock=deps.clock))
        self.speaker.pacer.on_voice_start = self._on_voice_start
        self.listener = Listener(
            deps.asr,
            deps.asr_executor,
            deps.endpointer,
            clock=deps.clock,
            on_heard=self._heard,
            on_voice=self._barge_in,
        )
        self.keypad = Keypad(deps.prompts.keypad)
        self._inputs: asyncio.Queue[Transcript | _Control] = asyncio.Queue()
        self._done = asyncio.Event()
        self._finishing = False
        self._first_audio = asyncio.Event()
        self._busy = False
        self._started = self._clock()
        self._last_activity = self._started
        self._last_turn_at = self._started
        self._no_input_count = 0
        self._limit_reached = False
        self._pending_timing: TurnTiming | None = None
        self._timing_open: TurnTiming | None = None

    @property
    def outcome(self) -> Outcome:
        return self.end.outcome

    @property
    def reason(self) -> Reason | None:
        return self.end.reason

    @property
    def barge_ins(self) -> int:
        return self.speaker.barge_ins

    # ------------------------------------------------------ inbound (called by the edge, on the loop)

    def on_frame(self, frame: InboundFrame) -> None:
        """The one entry point from the telephony edge."""
        self.frames_in += 1
        if isinstance(frame, AudioIn):
            self._on_audio(frame)
        elif isinstance(frame, Dtmf):
            self._barge_in()
            self._last_activity = self._clock()
            self._queue_turn(self.keypad.press(frame.digit, self._clock()))
        elif isinstance(frame, Transcript):
            self._barge_in()
            now = self._clock()
            self._pending_timing = TurnTiming("inject", now, transcript_at=now)
            self._inputs.put_nowait(Transcript(frame.text.strip(), source="inject"))
        elif isinstance(frame, Hangup):
            if not self._finishing:
                self.end.outcome, self.end.reason = Outcome.ABANDONED, Reason.CALLER_HANGUP
            self._done.set()
        elif isinstance(frame, PeerError):
            log.warning("call %s: peer reported error %s", self.call_id, frame.code)
            if not self._finishing:
                self.end.outcome, self.end.reason = Outcome.FAILED, Reason.PEER_ERROR
            self._done.set()

    def _on_audio(self, frame: AudioIn) -> None:
        if not self._first_audio.is_set():
            # The carrier's own frames are the truth (an older Asterisk labels everything 0x10).
            self._first_audio.set()
            pacer = self.speaker.pacer
            if frame.rate != pacer.rate:
                if pacer.started_at is not None:
                    log.info("call %s: caller audio at %d Hz; following it", self.call_id, frame.rate)
                pacer.set_rate(frame.rate)
        self.listener.audio(frame, self._clock())

    def _heard(self, transcript: Transcript, end_of_speech: float) -> None:
        now = self._clock()
        self._pending_timing = TurnTiming("asr", end_of_speech, transcript_at=now)
        self._last_activity = now
        self._inputs.put_nowait(transcript)

    def _queue_turn(self, turn: Transcript | None) -> None:
        """A keypad turn, timed from now."""
        if turn is not None:
            now = self._clock()
            self._pending_timing = TurnTiming("dtmf", now, transcript_at=now)
            self._inputs.put_nowait(turn)

    def _barge_in(self) -> None:
        dropped = self.speaker.stop()
        if dropped:
            log.info("call %s: barge-in, %d ms of bot audio dropped", self.call_id, dropped)

    # ---------------------------------------------------------------- the call

    async def run(self) -> None:
        """Run the call to its end; always leaves an outcome in Redis."""
        self.info = await self.record.start()
        await self._decide_rate()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.speaker.pacer.run(), name=f"pacer-{self.call_id}"),
            asyncio.create_task(self._ticker(), name=f"ticker-{self.call_id}"),
            asyncio.create_task(self._dialogue_loop(), name=f"dialogue-{self.call_id}"),
            asyncio.create_task(self.listener.run(), name=f"asr-{self.call_id}"),
        ]
        watch = asyncio.create_task(self._done.wait())
        try:
            done, _ = await asyncio.wait([watch, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in tasks and not task.cancelled() and task.exception() is not None:
                    log.error("call %s: %s crashed", self.call_id, task.get_name(), exc_info=task.exception())
                    self.end.outcome, self.end.reason = Outcome.FAILED, Reason.INTERNAL
                    with contextlib.suppress(Exception):
                        self._out.send_hangup()
        finally:
            for task in [*tasks, watch]:
                task.cancel()
            await asyncio.gather(*tasks, watch, return_exceptions=True)
            end = self.end
            if end.outcome is Outcome.HANDOFF and end.route is None:
                end.route = self._route()
            await self.record.finish(
                end.outcome,
                reason=end.reason,
                skill=end.skill,
                turns=self.turns,
                context=end.context,
                route=end.route if end.outcome is Outcome.HANDOFF else None,
            )
            if self._d.on_end is not None:
                self._d.on_end(self)
            log.info(
                "call %s ended: outcome=%s reason=%s turns=%d barge_ins=%d frames_out=%d",
                self.call_id,
                end.outcome,
                end.reason or "",
                self.turns,
                self.barge_ins,
                self.speaker.pacer.frames_sent,
            )

    async def _decide_rate(self) -> None:
        """Know the call's rate before the first frame goes out: the rate the dialplan registered (it knows
        whether it asked for ``c(slin16)``), else the kind of the caller's first frame, else 8 kHz."""
        registered = audio_rate(self.info.get("rate"))
        if self._first_audio.is_set():
            return
        if registered is not None:
            self.speaker.pacer.set_rate(registered)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._first_audio.wait(), RATE_WAIT_S)

    async def _ticker(self) -> None:
        """Everything that runs on the clock rather than on frame arrival."""
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            self.listener.tick(now)
            self._queue_turn(self.keypad.tick(now))
            if self._finishing:
                continue
            if now - self._started >= self._cfg.max_call_s:
                if not self._limit_reached:  # once; the dialogue loop acts on it after the current turn
                    self._limit_reached = True
                    self._inputs.put_nowait(_Control(Reason.TOO_LONG))
                continue
            if now - self._last_turn_at >= self._cfg.max_no_turn_s:
                # Audio (noise, music, a line left open) but nothing usable for minutes: goodbye, not 900 s
                # of a seat taken.
                self._last_turn_at = now
                self._inputs.put_nowait(_Control(Reason.NO_INPUT, final=True))
                continue
            busy = (
                self._busy
                or self.speaker.speaking
                or self.listener.in_utterance
                or self.keypad.pending
                or not self._inputs.empty()
            )
            if busy:
                self._last_activity = now
            elif now - max(self._last_activity, self.listener.last_heard_at) >= self._cfg.no_input_s:
                self._last_activity = now
                self._inputs.put_nowait(_Control(Reason.NO_INPUT))

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
                self._last_turn_at = self._clock()
                await self._turn(item.text, item.source, item.confidence)

    async def _control(self, item: _Control) -> None:
        if item.reason is Reason.TOO_LONG:
            await self._finish(Outcome.HANDOFF, Reason.TOO_LONG, prompt="too_long")
            return
        self._no_input_count += 1
        if item.final or self._no_input_count > self._cfg.no_input_retries:
            await self._finish(Outcome.COMPLETED, Reason.NO_INPUT, prompt="no_input_goodbye")
        else:
            await self._say_prompt("no_input")

    async def _turn(self, text: str, source: str, confidence: float | None = None) -> None:
        self._busy = True
        timing, self._pending_timing = self._pending_timing, None
        try:
            if source != "system":
                self.turns += 1
            try:
                reply = await self._ask(text, source, confidence)
            except DialogueError as exc:
                log.error("call %s: dialogue failed (%s); handing to a person", self.call_id, exc)
                if source != "system":
                    await self.record.say("caller", "[not recorded]")  # it may have held a PIN
                await self._finish(Outcome.HANDOFF, Reason.TECHNICAL, prompt="technical")
                return
            if reply.context is not None:
                self.end.context = dict(reply.context)
                await self.record.keep_context(reply.context)
            if source != "system":
                # Written after the reply: the assistant says whether the words held a secret (a PIN).
                line = caller_line(text, source, redacted=reply.input_redacted, heard_as=reply.heard_as)
                await self.record.say("caller", line)
            if timing is not None:
                timing.reply_at = self._clock()
                self.timings.append(timing)
                self._timing_open = timing
            for sentence in reply.texts:
                await self.record.say("bot", sentence)
                await self._speak(sentence)
            if reply.handoff is not None:
                self.end.context = dict(reply.handoff.context)
                self.end.skill = reply.handoff.skill
                await self._finish(
                    Outcome.HANDOFF,
                    reply.handoff.reason,
                    skill=reply.handoff.skill,
                    prompt=None if reply.texts else "handoff",
                    then=self._wait_line(),
                )
            elif reply.end_call:
                await self._finish(Outcome.COMPLETED, Reason.GOODBYE)
        finally:
            self._busy = False
            self._last_activity = self._clock()

    async def _ask(self, text: str, source: str, confidence: float | None) -> Reply:
        """One round trip to the assistant. If it has not answered within ``hold_after_s``, the caller hears
        the holding phrase meanwhile (once): no fault leaves more than a couple of seconds of silence, and
        the dialogue client gives up (-> a person) within its own timeout."""
        send = asyncio.ensure_future(
            self._d.dialogue.send(self.call_id, text, self._metadata(source, confidence))
        )
        done, _ = await asyncio.wait({send}, timeout=self._cfg.hold_after_s)
        if not done:
            with contextlib.suppress(Exception):
                await self._say_prompt("holding")
        try:
            return await send
        finally:
            send.cancel()

    def _on_voice_start(self, at: float) -> None:
        timing, self._timing_open = self._timing_open, None
        if timing is not None and timing.first_audio_at is None:
            timing.first_audio_at = at
            log.info("call %s: turn latency ms %s", self.call_id, json.dumps(timing.as_ms()))

    async def _speak(self, text: str, *, fixed: bool = False) -> None:
        """Say ``text``; stops early on barge-in. A synthesis failure goes to a person."""
        try:
            await self.speaker.say(text, fixed=fixed)
        except Exception:
            if self._finishing:
                raise
            log.exception("call %s: speech synthesis failed; handing to a person", self.call_id)
            await self._finish(Outcome.HANDOFF, Reason.TECHNICAL)

    async def _say_prompt(self, name: str) -> None:
        """Say one of the gateway's own phrases (``prompts.yml``); like every word the caller hears, it goes
        into the transcript, marked with the prompt's name."""
        text = self._d.prompts[name]
        await self.record.say("bot", text, prompt=name)
        await self._speak(text, fixed=True)

    def _route(self) -> Route:
        return choose_route(self.end.skill or Skill.GENERAL, self.end.context, self.info.get("language"))

    def _wait_line(self) -> tuple[str, str] | None:
        """Choose where the caller waits and estimate the wait; the sentence to say (``wait`` prompt), if
        the live queue model knows it."""
        route = self._route()
        wait = self._d.waits.estimate(route, self.end.skill or Skill.GENERAL) if self._d.waits else None
        self.end.route = wait.route if wait is not None else route
        if wait is None:
            return None
        self.end.context["wait_estimate_s"] = None if wait.seconds is None else round(wait.seconds)
        return "wait", wait_sentence(wait, self.end.skill or Skill.GENERAL, self._d.prompts.wait)

    async def _finish(
        self,
        outcome: Outcome,
        reason: Reason,
        *,
        skill: Skill | None = None,
        prompt: str | None = None,
        then: tuple[str, str] | None = None,
    ) -> None:
        """Say the last words (the prompt named, if any, then ``then``: a line built at run time, with its
        name), let them play out, hang up, record the outcome."""
        if self._done.is_set():
            return
        self._finishing = True
        self.end.outcome, self.end.reason = outcome, reason
        self.end.skill = skill or self.end.skill
        with contextlib.suppress(Exception):
            if prompt:
                await self._say_prompt(prompt)
            if then is not None:
                name, text = then
                await self.record.say("bot", text, prompt=name)
                await self._speak(text)
        pacer = self.speaker.pacer
        limit = pacer.queued_ms / 1000 + 2.0
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(pacer.drained(), timeout=limit)
        await asyncio.sleep(0.06)  # the last frame goes out before the hangup
        with contextlib.suppress(Exception):
            self._out.send_hangup()
        self._done.set()

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

Why this file is long: the turn loop, its timers and every way a call ends live together (the callback and
after-hours questions included) so the order of events in a call can be read in one place.

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
- a handoff whose expected wait is over ``callback_offer_s``: the
  caller accepts the callback offer (voice yes/no or keys 1/2)     → ``callback`` reason ``long-wait``
  (request submitted, ``bot/offers.py``; declined → ``handoff`` as before)
- outside the line's opening hours (the store's ``phone_line``)    → the hours said, then a voicemail
  (``voicemail``), a callback at the next opening (``callback`` reason ``after-hours``) or, both declined,
  the assistant carries on; its handoffs get the same offers, a priority-1 incident with an on-call number
  configured → ``oncall`` reason ``urgent``
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from actions.shared.masking import mask_text
from actions.shared.numerals import digits_from_speech
from actions.shared.speech import say_time
from bot.asr import VoskEngine
from bot.callbacks import submit as submit_callback
from bot.calls import CallRecord
from bot.config import GatewayConfig
from bot.dialogue import Dialogue, DialogueError, Parsed, Reply
from bot.keypad import Keypad
from bot.listening import Listener
from bot.offers import said_hours, said_opening, spoken_digits
from bot.pacer import Pacer
from bot.prompts import Prompts
from bot.routing import choose_route
from bot.speaking import Speaker
from bot.speculation import Speculator
from bot.tts import Speech
from bot.turntaking import EXPECTING, EchoReference, TurnWords
from bot.vad import EndpointerConfig
from bot.waits import Wait, Waits, wait_sentence
from telephony.audiosocket import audio_rate
from telephony.callstate import Outcome, Reason, Route, Skill
from telephony.frames import AudioIn, Dtmf, Hangup, InboundFrame, PeerError, Transcript

log = logging.getLogger(__name__)

TICK_S = 0.05
STUCK_DECODING = 2.0
"""A turn whose words the recogniser has not delivered in this many no-input periods is taken as lost: the
caller gets the no-input reprompt (then goodbye) rather than silence."""
RATE_WAIT_S = 0.5
"""A call whose rate was not registered waits this long for the caller's first frame (whose kind tells the
rate) before the bot starts sending at 8 kHz: far inside the 2 s after which ``AudioSocket()`` gives up."""


def caller_words(text: str) -> str:
    """What a caller said or typed, as words only: a leading ``/`` would make Rasa take it as an intent
    (``/session_start``, ``/request_agent``), and only the gateway itself (keypad menu choices, yes/no
    keys) may send intents."""
    return text.strip().lstrip("/").strip()


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


class _Hold:
    """A timer's decision: the caller finished a turn the recogniser has not delivered yet (say the holding
    phrase, unless the words came meanwhile)."""


_HOLD = _Hold()


@dataclass
class TurnTiming:
    """Latency marks of one caller turn, clock seconds."""

    source: str
    end_of_speech: float
    transcript_at: float | None = None
    reply_at: float | None = None
    first_audio_at: float | None = None
    end_rule: str | None = None
    """Which end-of-turn rule ended a spoken turn (``complete``, ``hesitation``, ``expecting:digits``...)."""
    silence_s: float | None = None
    """Trailing silence the endpointer waited before declaring the end (``end_of_speech`` is that moment)."""
    early: bool = False
    """Sent at the decision on a confident speculation, before the recogniser's final
    (``bot/speculation.py``)."""

    def as_ms(self) -> dict[str, Any]:
        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - self.end_of_speech) * 1000, 1)

        marks: dict[str, Any] = {
            "asr": ms(self.transcript_at),
            "rasa": ms(self.reply_at),
            "first_audio": ms(self.first_audio_at),
        }
        if self.end_rule is not None:
            marks["end_rule"] = self.end_rule
            marks["silence"] = None if self.silence_s is None else round(self.silence_s * 1000, 1)
        if self.early:
            marks["early"] = True
        return marks


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
    lines: LineSource | None = None
    """The store's phone lines (opening hours); ``None``: always open."""
    callers: CallerSource | None = None
    """Who is calling, for the greeting (the customer store); ``None``: every caller greeted alike."""
    wall_clock: Callable[[], float] = time.time
    """Unix seconds: opening hours, callback times (tests pass a fixed one)."""
    turn_words: TurnWords = field(default_factory=TurnWords.load)
    """Hesitations and backchannels (``nlu-data/turntaking.yml``)."""


class LineSource(Protocol):
    """Where the opening hours of the line dialled come from (the customer store)."""

    async def phone_line(self, number: str | None) -> Any:
        """``actions.backends.base.PhoneLine`` (``is_open``, ``next_opening``, ``local``, ``number``,
        ``branch``) or ``None``; the gateway reaches the store by name, never importing ``actions``."""


class CallerSource(Protocol):
    """Who is calling (the customer store), read only: the call is counted by the assistant at the first
    turn, so a connection that never says anything leaves no trace."""

    async def kind_of_caller(self, number: str | None) -> str | None:
        """``new``, ``returning``, ``existing`` or ``None`` (withheld number)."""


YES, NO = "/affirm", "/deny"
YES_NO_KEYS = {"1": "affirm", "2": "deny"}
"""During a yes/no question: key 1 is yes, key 2 is no."""
UNDERSTOOD_AT = 0.6
"""The assistant's confidence needed to take spoken words as yes or no."""
LINE_LOOKUP_S = 2.0
"""Longest wait for the line's hours at the start of a call; slower counts as open."""
CALLER_LOOKUP_S = 0.5
"""Longest wait for who is calling before the greeting; slower greets every caller alike."""
WINDOW_S = 2 * 3600.0
"""A callback at a chosen time may come up to this long after it."""


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
        ep = deps.endpointer
        reference = EchoReference(ep.echo_window_s, ep.echo_margin_db)
        pacer = Pacer(out.send_audio, 8000, clock=deps.clock, reference=reference)
        self.speaker = Speaker(deps.speech, pacer)
        self.speaker.pacer.on_voice_start = self._on_voice_start
        self.listener = Listener(
            deps.asr,
            deps.asr_executor,
            ep,
            clock=deps.clock,
            on_heard=self._heard,
            on_voice=self._barge_in,
            words=deps.turn_words,
            reference=reference,
            talking=lambda: self.speaker.speaking,
            on_pause=self.speaker.pause,
            on_resume=self.speaker.resume,
        )
        self.speculator: Speculator | None = None
        """Parses of the stable partial before the end of the turn (adaptive mode, a recogniser, and a
        dialogue with a parse-only route)."""
        if ep.speculate and self.listener.policy is not None and deps.asr is not None:
            parse = getattr(deps.dialogue, "parse", None)
            if parse is not None:
                self._parse: Any = parse
                self.speculator = Speculator(
                    self._parse_partial,
                    clock=deps.clock,
                    confident=ep.confident,
                    timeout_s=ep.parse_timeout_s,
                )
                self.listener.policy.completeness = self.speculator.judge
                self.listener.commit_early = self.speculator.committable
                self.listener.on_final = self.speculator.final
        self.keypad = Keypad(deps.prompts.keypad)
        self._inputs: asyncio.Queue[Transcript | _Control | _Hold] = asyncio.Queue()
        self._done = asyncio.Event()
        self._finishing = False
        self._end_recorded = False
        self._first_audio = asyncio.Event()
        self._busy = False
        self._started = self._clock()
        self._last_activity = self._started
        self._last_turn_at = self._started
        self._no_input_count = 0
        self._held_for: float | None = None
        """The decision time of the last turn the holding phrase covered while its words were decoded."""
        self._limit_reached = False
        self._pending_timing: TurnTiming | None = None
        self._timing_open: TurnTiming | None = None
        self._wait: Wait | None = None
        self._closed: Any = None
        self._line_known: Any = None
        """The line dialled (``PhoneLine``), when the store knows it."""
        """The line dialled, when the call came outside its opening hours."""

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
            self._inputs.put_nowait(Transcript(caller_words(frame.text), source="inject"))
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
        decision = self.listener.last_decision
        if decision is not None:
            self._pending_timing.end_rule = decision.rule
            self._pending_timing.silence_s = decision.silence_s
        self._pending_timing.early = self.listener.sent_early
        if self.speculator is not None:
            self.speculator.forget()
        self._last_activity = now
        words = caller_words(transcript.text)
        if words != transcript.text:
            transcript = Transcript(words, source=transcript.source, confidence=transcript.confidence)
        self._inputs.put_nowait(transcript)

    async def _parse_partial(self, text: str) -> Parsed:
        """A speculative parse of the caller's words so far (no tracker touched)."""
        parsed: Parsed = await self._parse(
            self.call_id,
            caller_words(text),
            self._metadata("asr"),
            timeout_s=self._d.endpointer.parse_timeout_s,
        )
        return parsed

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
                    await self._record_end()
                    with contextlib.suppress(Exception):
                        self._out.send_hangup()
        finally:
            if self.speculator is not None:
                self.speculator.close()
            for task in [*tasks, watch]:
                task.cancel()
            await asyncio.gather(*tasks, watch, return_exceptions=True)
            end = self.end
            await self._record_end()
            if self._d.on_end is not None:
                self._d.on_end(self)
            log.info(
                "call %s ended: outcome=%s reason=%s turns=%d barge_ins=%d gated=%d frames_out=%d"
                " speculation=%s",
                self.call_id,
                end.outcome,
                end.reason or "",
                self.turns,
                self.barge_ins,
                self.listener.gated,
                self.speaker.pacer.frames_sent,
                json.dumps(asdict(self.speculator.stats)) if self.speculator is not None else "off",
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
            decoding = self.listener.awaiting_since
            if decoding is not None and now - decoding >= STUCK_DECODING * self._cfg.no_input_s:
                decoding = None  # stuck rather than late: the no-input path takes over, never a dead line
            if (
                decoding is not None
                and now - decoding >= self._cfg.hold_after_s
                and self._held_for != decoding
                and not self._busy
                and not self.speaker.speaking
            ):
                self._held_for = decoding  # the recogniser lags (a burst of callers): not a silent line
                self._inputs.put_nowait(_HOLD)
            busy = (
                self._busy
                or self.speaker.speaking
                or self.listener.in_utterance
                or self.keypad.pending
                or not self._inputs.empty()
            )
            if busy:
                self._last_activity = now
            elif decoding is not None:
                pass  # the caller's words are still being decoded: no "are you still there?"
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
        if await self._after_hours_at_start():
            return
        await self._greet()
        if self._d.asr is None and not self._finishing:
            await self._say_prompt("keypad_menu")
        while not self._finishing:
            item = await self._inputs.get()
            if isinstance(item, _Hold):
                await self._hold_while_decoding()
            elif isinstance(item, _Control):
                await self._control(item)
            elif item.text:
                self._no_input_count = 0
                self._last_turn_at = self._clock()
                await self._turn(item.text, item.source, item.confidence)

    async def _greet(self) -> None:
        """The first words: the gateway's own, by who is calling. The assistant's conversation starts with
        the caller's first turn (the call's metadata comes with every turn), so a connection that never
        produces a turn costs no Rasa tracker and is not counted as a call in the store."""
        key, text = self._d.prompts.greeting_for(await self._caller_kind())
        await self.record.say("bot", text, prompt=f"greeting.{key}")
        await self._speak(text, fixed=True)

    async def _caller_kind(self) -> str | None:
        number = self.info.get("caller_number") or None
        if self._d.callers is None or number is None:
            return None
        try:
            return await asyncio.wait_for(self._d.callers.kind_of_caller(number), CALLER_LOOKUP_S)
        except Exception as exc:  # the store's trouble must not keep a caller from the bot
            log.warning("call %s: caller unknown (%s); plain greeting", self.call_id, type(exc).__name__)
            return None

    async def _hold_while_decoding(self) -> None:
        """The holding phrase for a caller whose finished turn the recogniser is still decoding, unless the
        words arrived meanwhile."""
        if self.listener.awaiting_since is not None and self._inputs.empty():
            await self._say_prompt("holding")

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
                expecting = reply.context.get("expecting")
                self.listener.expecting = expecting if expecting in EXPECTING else "free"
            if source != "system":
                # Written after the reply: the assistant says whether the words held a secret (a PIN).
                line = caller_line(text, source, redacted=reply.input_redacted, heard_as=reply.heard_as)
                await self.record.say("caller", line)
            if timing is not None:
                timing.reply_at = self._clock()
                self.timings.append(timing)
                if self.speaker.speaking:
                    # The holding phrase is still playing: the reply follows it without a gap (no new voice
                    # start to mark), so its first audio is when what is queued now has played.
                    self._timing_open = None
                    self._on_timed_audio(timing, timing.reply_at + self.speaker.pacer.queued_ms / 1000)
                else:
                    self._timing_open = timing
            for sentence in reply.texts:
                await self.record.say("bot", sentence)
                await self._speak(sentence)
            if reply.handoff is not None:
                self.end.context = dict(reply.handoff.context)
                self.end.skill = reply.handoff.skill
                await self._hand_off(reply.handoff.reason, said=bool(reply.texts))
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
        if timing is not None:
            self._on_timed_audio(timing, at)

    def _on_timed_audio(self, timing: TurnTiming, at: float) -> None:
        """The reply to a timed turn starts playing at ``at``: its latency line (the benchmark reads it)."""
        if timing.first_audio_at is None:
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
        self._wait = wait
        self.end.route = wait.route if wait is not None else route
        if wait is None:
            return None
        self.end.context["wait_estimate_s"] = None if wait.seconds is None else round(wait.seconds)
        return "wait", wait_sentence(wait, self.end.skill or Skill.GENERAL, self._d.prompts.wait)

    # ---------------------------------------------------------------- handoff, callbacks, after hours

    async def _hand_off(self, reason: Reason, *, said: bool) -> None:
        """The assistant asked for a person: outside hours, the after-hours offers (or the on-call number);
        else the wait sentence, a callback offer when the wait is long, then the queue."""
        skill = self.end.skill or Skill.GENERAL
        entered = self._d.wall_clock()
        if self._closed is not None:
            urgent = self.end.context.get("incident_priority") == 1
            if urgent and self._cfg.oncall:
                await self._finish(Outcome.ONCALL, Reason.URGENT, skill=skill, then=self._line("oncall"))
                return
            if not await self._after_hours_offers(entered):
                await self._finish(Outcome.COMPLETED, Reason.AFTER_HOURS, then=self._line("goodbye"))
            return
        if not said:
            await self._say_prompt("handoff")
        wait_line = self._wait_line()
        if wait_line is not None:
            name, text = wait_line
            await self.record.say("bot", text, prompt=name)
            await self._speak(text)
        wait = self._wait
        if wait is not None and wait.seconds is not None and wait.seconds > self._cfg.callback_offer_s:
            offer: dict[str, Any] = {"offered": True, "wait_s": round(wait.seconds), "at": round(entered, 3)}
            self.end.context["callback"] = offer
            answer, by = await self._ask_yes_no("offer")
            offer.update(answer=_answer_word(answer), by=by)
            if answer:
                number = await self._confirm_number()
                window = await self._ask_window() if number is not None else None
                start, end = window or (0.0, 0.0)
                if number is not None and await self._submit(number, entered, start, offer, window_end=end):
                    words = self._d.prompts.callback
                    if window is None:
                        confirmed = words["confirmed"].format(digits=spoken_digits(number))
                    else:
                        confirmed = words["confirmed_window"].format(
                            digits=spoken_digits(number), start=self._said_at(start), end=self._said_at(end)
                        )
                    await self._finish(
                        Outcome.CALLBACK, Reason.LONG_WAIT, skill=skill, then=("callback", confirmed)
                    )
                    return
                offer["answer"] = "no-number" if number is None else "not-submitted"
            await self.record.keep_context(self.end.context)
            if not self._finishing:
                await self._say_callback_line("declined")
        await self._finish(Outcome.HANDOFF, reason, skill=skill)

    async def _after_hours_at_start(self) -> bool:
        """Outside the line's hours: say them and offer a voicemail, then a callback at opening time.
        Whether the call is decided (voicemail, callback); else the assistant carries on."""
        if self._d.lines is None:
            return False
        try:
            line = await asyncio.wait_for(
                self._d.lines.phone_line(self.info.get("line") or None), LINE_LOOKUP_S
            )
            now = self._d.wall_clock()
            self._line_known = line
            if line is None or line.is_open(now):
                return False
            opens = line.next_opening(now)
            hours = said_hours(line)
        except Exception as exc:  # the store's trouble must not keep a caller from the bot
            log.warning(
                "call %s: opening hours unknown (%s); treated as open", self.call_id, type(exc).__name__
            )
            return False
        self._closed = line
        when = said_opening(line.local(now), opens) if opens is not None else ""
        self.end.context["after_hours"] = {
            "line": line.number,
            "next_opening": opens.timestamp() if opens else None,
        }
        closed = self._d.prompts.callback["closed"].format(hours=hours, opens=when)
        await self.record.say("bot", closed, prompt="callback.closed")
        await self._speak(closed)
        if await self._after_hours_offers(now):
            return True
        await self._say_callback_line("carry_on")
        return False

    async def _after_hours_offers(self, entered: float) -> bool:
        """A voicemail, else a callback at the next opening; whether the caller took one (the call ends)."""
        record: dict[str, Any] = {"offered": ["voicemail", "callback"]}
        self.end.context.setdefault("after_hours", {})["offers"] = record
        answer, by = await self._ask_yes_no("voicemail_offer")
        record["voicemail"] = _answer_word(answer)
        record["voicemail_by"] = by
        if answer:
            await self.record.keep_context(self.end.context)
            await self._finish(Outcome.VOICEMAIL, Reason.AFTER_HOURS, then=self._line("voicemail_go"))
            return True
        if self._finishing or self._done.is_set():
            return True
        answer, by = await self._ask_yes_no("opening_offer")
        record["callback"] = _answer_word(answer)
        record["callback_by"] = by
        line = self._closed
        opens = line.next_opening(self._d.wall_clock()) if line is not None else None
        if answer and opens is not None:
            number = await self._confirm_number()
            if number is not None and await self._submit(number, entered, opens.timestamp(), record):
                words = self._d.prompts.callback["scheduled"].format(
                    digits=spoken_digits(number),
                    opens=said_opening(line.local(self._d.wall_clock()), opens) if line else "",
                )
                await self._finish(Outcome.CALLBACK, Reason.AFTER_HOURS, then=("callback.scheduled", words))
                return True
            record["callback"] = "no-number" if number is None else "not-submitted"
        await self.record.keep_context(self.end.context)
        return self._finishing or self._done.is_set()

    def _zone(self) -> tzinfo | None:
        """The line's time zone when the store knows it, else the gateway's own."""
        try:
            return self._line_known.zone() if self._line_known is not None else None
        except Exception:
            return None

    def _said_at(self, unix_s: float) -> str:
        return say_time(datetime.fromtimestamp(unix_s, self._zone()).time())

    async def _ask_window(self) -> tuple[float, float] | None:
        """A later time for the callback, if the caller wants one: (not before, window end), unix seconds,
        from an hour keyed in 24-hour form (the next time the clock shows it, in the line's zone) and
        :data:`WINDOW_S` after it. ``None``: as soon as it is their turn."""
        answer, _ = await self._ask_yes_no("window_offer")
        note = self.end.context.setdefault("callback", {})
        note["window"] = "asap" if answer is not False else "asked"
        if answer is not False:
            return None
        previous = self.keypad.use_menu({})
        expecting, self.listener.expecting = self.listener.expecting, "digits"  # an hour
        try:
            for _ in range(2):
                await self._say_callback_line("ask_window")
                turn = await self._next_answer()
                if turn is None:
                    return None
                raw = turn.text if turn.source == "dtmf" else digits_from_speech(turn.text) or ""
                hour = int(raw) if raw.isdigit() and len(raw) <= 2 else -1
                if not 0 <= hour <= 23:
                    continue
                now = datetime.fromtimestamp(self._d.wall_clock(), self._zone())
                start = now.replace(hour=hour, minute=0, second=0, microsecond=0)
                if start <= now:
                    start += timedelta(days=1)
                window = (start.timestamp(), start.timestamp() + WINDOW_S)
                confirm = self._d.prompts.callback["window_confirm"].format(
                    start=self._said_at(window[0]), end=self._said_at(window[1])
                )
                self.keypad.use_menu(YES_NO_KEYS)
                agreed, _ = await self._ask_yes_no("window_confirm", text=confirm)
                self.keypad.use_menu({})
                if agreed:
                    note["window"] = "chosen"
                    return window
                if agreed is None:
                    return None
            return None
        finally:
            self.listener.expecting = expecting
            self.keypad.use_menu(previous)

    async def _submit(
        self, number: str, entered: float, not_before: float, note: dict[str, Any], *, window_end: float = 0.0
    ) -> bool:
        """Submit the callback request; its id goes into the context (``note``). Whether it was stored."""
        route = self.end.route or self._route()
        try:
            request = await submit_callback(
                self._d.redis,
                call=self.call_id,
                number=number,
                skill=(self.end.skill or Skill.GENERAL).value,
                queue=route.queue,
                priority=route.priority,
                entered=entered,
                not_before=not_before,
                window_end=window_end,
                language=self.info.get("language") or "en",
            )
            note["request"] = request.request
        except Exception as exc:
            log.error("call %s: callback request not stored (%s)", self.call_id, type(exc).__name__)
            return False
        note.update(
            entered=round(entered, 3),
            not_before=round(not_before, 3),
            window_end=round(window_end, 3),
            queue=route.queue,
        )
        log.info("call %s: callback request %s submitted", self.call_id, note["request"])
        await self.record.keep_context(self.end.context)
        return True

    async def _confirm_number(self) -> str | None:
        """The number to call back: the caller id if the caller confirms it, else one keyed in and confirmed
        (each read back digit by digit). ``None``: no number agreed."""
        words = self._d.prompts.callback
        caller = "".join(ch for ch in self.info.get("caller_number") or "" if ch.isdigit())
        if len(caller) >= 3:
            answer, _ = await self._ask_yes_no(
                "caller_id", text=words["caller_id"].format(digits=spoken_digits(caller))
            )
            if answer:
                return caller
            if answer is None:
                return None
        for _ in range(2):
            typed = await self._ask_digits()
            if typed is None:
                return None
            confirm = words["confirm_number"].format(digits=spoken_digits(typed))
            answer, _ = await self._ask_yes_no("confirm_number", text=confirm)
            if answer:
                return typed
            if answer is None:
                return None
        return None

    def _line(self, name: str) -> tuple[str, str]:
        return f"callback.{name}", self._d.prompts.callback[name]

    async def _say_callback_line(self, name: str, text: str | None = None) -> None:
        """Say ``callback.<name>`` (a fixed line, cached like the gateway's other phrases), or ``text`` built
        from it (a number read back: cached in memory only)."""
        fixed = text is None
        text = text if text is not None else self._d.prompts.callback[name]
        await self.record.say("bot", text, prompt=f"callback.{name}")
        await self._speak(text, fixed=fixed)

    async def _next_answer(self) -> Transcript | None:
        """The caller's next turn while the bot waits on its own question (no-input reprompts count);
        ``None`` after the reprompts, at the time limit, or when the call ends."""
        busy, self._busy = self._busy, False
        self._last_activity = self._clock()
        try:
            while not self._done.is_set():
                getter = asyncio.ensure_future(self._inputs.get())
                ended = asyncio.ensure_future(self._done.wait())
                done, _ = await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
                if getter not in done:
                    getter.cancel()
                    return None
                item = getter.result()
                if isinstance(item, _Hold):
                    await self._hold_while_decoding()
                    continue
                if isinstance(item, _Control):
                    if item.reason is Reason.TOO_LONG:
                        self._limit_reached = True
                        return None
                    return Transcript("", source="timeout")
                if item.text:
                    self.turns += 1
                    await self.record.say("caller", caller_line(item.text, item.source, redacted=False))
                    return item
            return None
        finally:
            self._busy = busy
            self._last_activity = self._clock()

    async def _ask_yes_no(self, name: str, *, text: str | None = None) -> tuple[bool | None, str]:
        """Ask the ``callback.<name>`` question (or the text given): (yes / no / ``None`` for no usable
        answer, how it came: ``voice``, ``keypad``, ``none``)."""
        previous = self.keypad.use_menu(YES_NO_KEYS)
        try:
            await self._say_callback_line(name, text)
            for attempt in range(self._cfg.no_input_retries + 1):
                turn = await self._next_answer()
                if turn is None:
                    return None, "none"
                if turn.source == "dtmf":
                    if turn.text in (YES, NO):
                        return turn.text == YES, "keypad"
                elif turn.text:
                    verdict = await self._yes_or_no(turn.text)
                    if verdict is not None:
                        return verdict, "voice"
                if attempt < self._cfg.no_input_retries:
                    await self._say_callback_line("not_understood")
            return None, "none"
        finally:
            self.keypad.use_menu(previous)

    async def _yes_or_no(self, text: str) -> bool | None:
        understand = getattr(self._d.dialogue, "understand", None)
        if understand is None:
            return None
        try:
            found = await understand(self.call_id, text)
        except Exception as exc:  # the keypad still works
            log.warning("call %s: yes/no not understood (%s)", self.call_id, type(exc).__name__)
            return None
        if found.confidence < UNDERSTOOD_AT or found.intent not in ("affirm", "deny"):
            return None
        return bool(found.intent == "affirm")

    async def _ask_digits(self) -> str | None:
        """Ask for a number on the keypad (spoken digits count too); ``None`` when none came."""
        previous = self.keypad.use_menu({})
        expecting, self.listener.expecting = self.listener.expecting, "digits"  # a pause between digits
        try:
            await self._say_callback_line("ask_number")
            for attempt in range(self._cfg.no_input_retries + 1):
                turn = await self._next_answer()
                if turn is None:
                    return None
                digits = (
                    "".join(ch for ch in turn.text if ch.isdigit())
                    if turn.source == "dtmf"
                    else (digits_from_speech(turn.text) or "" if turn.text else "")
                )
                if 3 <= len(digits) <= 20:
                    return digits
                if attempt < self._cfg.no_input_retries:
                    await self._say_callback_line("ask_number")
            return None
        finally:
            self.listener.expecting = expecting
            self.keypad.use_menu(previous)

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
        # The outcome is in Redis before Asterisk hears the hangup: its dialplan asks for it at once.
        await self._record_end()
        with contextlib.suppress(Exception):
            self._out.send_hangup()
        self._done.set()

    async def _record_end(self) -> None:
        """Write how the call ended to its record, once (before the hangup frame where we hang up)."""
        if self._end_recorded:
            return
        self._end_recorded = True
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


def _answer_word(answer: bool | None) -> str:
    return "yes" if answer else "no" if answer is False else "none"

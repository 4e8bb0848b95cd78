"""The whisper: a one-sentence brief the agent hears after answering, before the caller is connected.

The queue runs ``[attendant-whisper]`` on the agent's channel (``Queue()``'s gosub argument), which
connects an ``AudioSocket()`` leg to this gateway with the call's whisper UUID
(``telephony.callstate.whisper_uuid``: the call's UUID with version nibble 8, so the gateway knows the leg at
its first frame). The leg reads what the bot learned from the call's record in Redis, says e.g. "Verified
customer Ada Lovelace, billing, asks about their balance, waited two minutes." and hangs up; the dialplan
returns and Asterisk bridges agent and caller.

Every word is the editors' (``nlu-data/prompts.yml``, ``whisper:``); the sentence is built from the call's
enums and slots only (never the transcript). For a callback (the call's record names the callback request the
dispatcher is dialling, :mod:`bot.callbacks`) it is the ``callback`` sentence: "Callback: verified customer
..., asked two hours ago." Anything missing or broken — no record, Redis down, synthesis
failing — ends the leg at once: the agent is connected without the brief rather than left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from bot.pacer import Pacer
from bot.prompts import WhisperWords
from bot.tts import Speech
from telephony.callstate import Skill, call_key
from telephony.frames import AudioIn, Hangup, InboundFrame, PeerError

log = logging.getLogger(__name__)

WHISPER_LIMIT_S = 8.0
"""Longest a brief may take; the caller hears silence meanwhile."""
REDIS_TIMEOUT_S = 1.0


def waited_words(seconds: float, words: WhisperWords) -> str:
    """ "a few seconds", "one minute", "four minutes", "an hour and a half", "five hours" (rounded to whole
    minutes from a minute on, then as :meth:`bot.prompts.DurationWords.say` says them)."""
    if seconds < 45:
        return words.waited_seconds
    return words.waited.say(max(1, round(seconds / 60)))


def brief(record: Mapping[str, str], words: WhisperWords, *, now: float) -> str:
    """The sentence for a call's record (its Redis hash, decoded)."""
    try:
        context: dict[str, Any] = json.loads(record.get("context") or "{}")
    except ValueError:
        context = {}
    verified = context.get("verified") is True
    customer = context.get("customer")
    name = str(customer.get("name") or "").strip() if verified and isinstance(customer, dict) else ""
    if verified:
        caller = words.verified.format(name=name) if name else words.verified_no_name
    else:
        caller = words.unverified
    skill = Skill.parse(record.get("skill") or "general")
    task = str(context.get("task") or "")
    topic = words.topics.get(task) or words.reasons.get(record.get("reason") or "", words.topic_unknown)
    try:
        waited = max(0.0, now - float(record.get("ended_at") or now))
    except ValueError:
        waited = 0.0
    # A callback's leg: the dispatcher marked the call (``callback``) when it dialled the agent.
    sentence = words.callback if record.get("callback") else words.sentence
    return sentence.format(
        caller=caller,
        skill=words.skills.get(skill.value, skill.value),
        topic=topic,
        waited=waited_words(waited, words),
    )


class WhisperLeg:
    """One whisper leg (a :class:`telephony.server.CallHandler`): say the brief, hang up."""

    def __init__(
        self,
        leg_id: str,
        call_id: uuid.UUID,
        out: Any,
        *,
        speech: Speech,
        words: WhisperWords,
        redis: Any,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.leg_id = leg_id
        self.call_id = call_id
        self._out = out
        self._speech = speech
        self._words = words
        self._redis = redis
        self._wall = wall
        self.pacer = Pacer(out.send_audio, 8000, clock=clock)
        self._gone = asyncio.Event()
        self.said: str | None = None

    def on_frame(self, frame: InboundFrame) -> None:
        if isinstance(frame, AudioIn) and frame.rate != self.pacer.rate:
            self.pacer.set_rate(frame.rate)
        elif isinstance(frame, (Hangup, PeerError)):
            self._gone.set()

    async def run(self) -> None:
        pacer = asyncio.create_task(self.pacer.run(), name=f"whisper-pacer-{self.leg_id}")
        try:
            await asyncio.wait_for(self._say(), WHISPER_LIMIT_S)
        except Exception as exc:  # whatever it was, the agent is connected without the brief
            log.warning("whisper for call %s not said (%s)", self.call_id, type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                self._out.send_hangup()
            pacer.cancel()
            await asyncio.gather(pacer, return_exceptions=True)

    async def _say(self) -> None:
        raw = await asyncio.wait_for(self._redis.hgetall(call_key(self.call_id)), REDIS_TIMEOUT_S)
        record = {_s(k): _s(v) for k, v in (raw or {}).items()}
        if not record:
            log.warning("whisper for call %s: no record of the call", self.call_id)
            return
        text = brief(record, self._words, now=self._wall())
        async for audio in self._speech.say(text, self.pacer.rate, cache="memory"):
            if self._gone.is_set():
                return
            self.pacer.enqueue(audio)
        self.said = text
        done = asyncio.create_task(self.pacer.drained())
        gone = asyncio.create_task(self._gone.wait())
        await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in (done, gone):
            task.cancel()
        await asyncio.sleep(0.06)  # the last frame goes out before the hangup
        log.info("whisper for call %s said", self.call_id)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

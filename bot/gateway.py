"""The gateway process: loads the shared parts once, then serves calls.

Shared, loaded once: the Vosk model (if any), the Piper voice, the prompt cache, the worker pools, the Rasa
client and the Redis connection pool. Per call: a :class:`bot.session.CallSession`.

The loop-lag monitor measures how late a 20 ms timer fires; if decoding or synthesis ever ran on the event
loop it would show here as lag of hundreds of milliseconds (and in the pacing of every call).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.asr import VoskEngine
from bot.callbacks import Dispatcher, Opening
from bot.calls import ActiveCalls
from bot.config import Config
from bot.console import Console, ConsoleSettings, build_console, load_agents, roster_with_tokens
from bot.console.asterisk import AmiCallControl, DeskBridge, DeskFeed
from bot.console.control import CallControl, LoggedCallControl
from bot.dialogue import RasaClient
from bot.prompts import Prompts, domain_fixed_texts
from bot.retention import Purge
from bot.session import CallSession, SessionDeps
from bot.tts import Lexicon, PiperSynthesizer, PromptCache, Speech
from bot.turntaking import TurnWords
from bot.waits import ModelWaits
from bot.whisper import WhisperLeg
from telephony.ami import AmiClient
from telephony.callstate import whispered_call
from telephony.queues import QueueModel, QueueSettings
from telephony.queuetracker import QueueTracker
from telephony.server import AudioSocketServer, Connection

log = logging.getLogger(__name__)


def name_os_thread() -> None:
    """Give the calling worker thread its Python name at the OS level too (``/proc/<pid>/task/*/comm``,
    ``top -H``, py-spy), so the CPU of decoding (``asr_*``) and synthesis (``tts_*``) can be told from the
    rest of the gateway. A pool initializer; does nothing where ``prctl`` is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, threading.current_thread().name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


@dataclass
class LoopLag:
    """How late the event loop runs timers, milliseconds."""

    samples: list[float] = field(default_factory=list)
    period_s: float = 0.02

    async def run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.period_s)
            self.samples.append((time.perf_counter() - t - self.period_s) * 1000)
            if len(self.samples) > 30000:
                del self.samples[:10000]

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        s = sorted(self.samples)
        return {
            "p50_ms": round(statistics.median(s), 2),
            "p99_ms": round(s[int(len(s) * 0.99) - 1], 2),
            "max_ms": round(s[-1], 2),
        }


class Gateway:
    """Everything the gateway runs, built from one :class:`Config`."""

    def __init__(self, config: Config, *, opening: Opening | None = None) -> None:
        """Load everything heavy (models, voice). Call outside the event loop. ``opening``: the calling hours
        callbacks keep to (default: always open, minus ``ATTENDANT_CALLBACK_QUIET``)."""
        self.config = config
        self.opening = opening
        self.prompts = Prompts.load(config.prompts_file)
        self.turn_words = TurnWords.load(config.turn_words_file)
        self.asr_pool = ThreadPoolExecutor(
            config.asr.threads, thread_name_prefix="asr", initializer=name_os_thread
        )
        self.tts_pool = ThreadPoolExecutor(
            config.tts.threads, thread_name_prefix="tts", initializer=name_os_thread
        )
        self.asr = VoskEngine(config.asr.model_dir) if config.asr.model_dir is not None else None
        synth = PiperSynthesizer(
            config.tts.voice, onnx_threads=config.tts.onnx_threads, length_scale=config.tts.length_scale
        )
        lexicon = Lexicon.load(config.tts.lexicon)
        self.speech = Speech(synth, PromptCache(config.tts.cache_dir), self.tts_pool, lexicon)
        self.dialogue = RasaClient(config.rasa.url, config.rasa.token, config.rasa.timeout_s)
        self.redis: Any = aioredis.from_url(config.redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.lag = LoopLag()
        self.active = ActiveCalls(self.redis, heartbeat_s=config.gateway.heartbeat_s)
        self.sessions: dict[str, CallSession] = {}
        self.server = AudioSocketServer(
            self._new_call,
            host=config.gateway.host,
            port=config.gateway.port,
            text_injection=config.gateway.text_injection,
            max_calls=config.gateway.max_calls,
            first_frame_timeout_s=config.gateway.first_frame_timeout_s,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # The roster is read here (before the loop): a bad agents file stops the start with its file:line.
        self.roster, self.agent_tokens = roster_with_tokens(
            load_agents(config.console.agents_file), config.console.tokens_file
        )
        self.ami: AmiClient | None = None
        self.queue_model: QueueModel | None = None
        self.waits: ModelWaits | None = None
        self.console: Console | None = None
        self._bridge: DeskBridge | None = None
        self.callbacks: Dispatcher | None = None
        self.store: Any = None
        """The customer store, read only: who is calling (the greeting) and the lines' opening hours (after
        hours); ``None`` if it cannot be opened."""
        try:
            from actions.store import StoreConfig, open_store

            self.store = open_store(StoreConfig.from_env())
        except Exception as exc:
            log.warning("no customer store (%s): plain greetings, every line counts as open", exc)

    def _new_call(self, call_id: str, out: Connection) -> CallSession | WhisperLeg:
        call = whispered_call(uuid.UUID(call_id))
        if call is not None:  # the agent's whisper leg for a handed-off call, not a call
            return WhisperLeg(
                call_id, call, out, speech=self.speech, words=self.prompts.whisper, redis=self.redis
            )
        return self._new_session(call_id, out)

    def _new_session(self, call_id: str, out: Connection) -> CallSession:
        deps = SessionDeps(
            speech=self.speech,
            dialogue=self.dialogue,
            prompts=self.prompts,
            redis=self.redis,
            asr=self.asr,
            asr_executor=self.asr_pool,
            waits=self.waits,
            lines=self.store if self.config.gateway.after_hours else None,
            callers=self.store,
            endpointer=self.config.endpointer,
            turn_words=self.turn_words,
            on_end=lambda s: self.sessions.pop(s.call_id, None),
        )
        session = CallSession(call_id, out, deps, self.config.gateway)
        self.sessions[call_id] = session
        return session

    async def start(self) -> None:
        """Warm the fixed prompts, connect to AMI (if configured), serve the console, then listen."""
        fixed = fixed_phrases(self.prompts, self.config.domain_file)
        started = time.perf_counter()
        await self.speech.warm(fixed, self.config.tts.warm_rates)
        log.info(
            "%d fixed phrases ready at %s Hz in %.1f s",
            len(fixed),
            "/".join(str(r) for r in self.config.tts.warm_rates),
            time.perf_counter() - started,
        )
        control: CallControl = LoggedCallControl()
        if self.config.ami is not None:
            self.ami = AmiClient(self.config.ami)
            self.queue_model = QueueModel(QueueSettings(), clock=time.time)
            QueueTracker(self.ami, self.queue_model)  # re-syncs the model at every (re)connect
            self.waits = ModelWaits(self.queue_model, time.time)
            control = AmiCallControl(self.ami)
            self.ami.start()
        else:
            log.warning(
                "no AMI connection (ATTENDANT_AMI_SECRET unset): no wait estimates, no console pops, "
                "no callbacks dialled by this gateway"
            )
        self.console = build_console(
            self.roster,
            self.redis,
            control,
            settings=ConsoleSettings(
                voicemail_dir=self.config.console.voicemail_dir,
                voicemail_retention_s=self.config.voicemail_retention_s,
            ),
        )
        await self.console.start(self.config.console.host, self.config.console.port)
        if self.ami is not None and self.queue_model is not None:
            feed = DeskFeed(self.roster, self.console.desk.feed, self.queue_model)
            self._bridge = DeskBridge(self.ami, feed, self.console.desk.feed)
            self._bridge.start()
            if self.config.callbacks is not None:
                if self.opening is None and self.store is not None and self.config.gateway.after_hours:
                    self.opening = await self._store_opening()
                # One consumer name per gateway process; a restarted one takes over with XAUTOCLAIM.
                self.callbacks = Dispatcher(
                    self.redis,
                    self.ami,
                    self.queue_model,
                    consumer=f"{socket.gethostname()}-{os.getpid()}",
                    settings=self.config.callbacks,
                    opening=self.opening,
                )
                self.callbacks.start()
        await self.server.start()
        self._tasks.append(asyncio.create_task(self.lag.run(), name="loop-lag"))
        self._tasks.append(asyncio.create_task(self.active.run(self.sessions.keys), name="heartbeat"))
        purge = Purge(
            self.redis,
            window_s=self.config.retention_s,
            voicemail_window_s=self.config.voicemail_retention_s,
            voicemail_dir=self.config.console.voicemail_dir,
        )
        self._tasks.append(asyncio.create_task(purge.run(), name="retention"))
        log.info(
            "gateway listening on %s:%d (speech recognition %s)",
            self.config.gateway.host,
            self.server.port,
            "on" if self.asr else "OFF: keypad and text only",
        )

    async def _store_opening(self) -> Opening | None:
        """The calling hours of the callbacks: the opening hours of the store's default line (the hours the
        after-hours answer says), or ``None`` (always open, the quiet time aside) when the store has none."""
        try:
            line = await asyncio.wait_for(self.store.phone_line(None), 5.0)
        except Exception as exc:
            log.warning("callbacks: opening hours unknown (%s); dialling at any time but the quiet time", exc)
            return None
        if line is None:
            return None
        log.info("callbacks: dialled within the opening hours of line %s", line.number)
        return LineOpening(line)

    async def close(self) -> None:
        """Stop listening, end calls, close the console and AMI, release pools."""
        await self.server.close()
        if self.callbacks is not None:
            await self.callbacks.close()
        if self._bridge is not None:
            await self._bridge.close()
        if self.console is not None:
            await self.console.close()
        if self.ami is not None:
            await self.ami.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dialogue.close()
        if self.store is not None:
            await self.store.close()
        await self.redis.close()
        self.asr_pool.shutdown(wait=False, cancel_futures=True)
        self.tts_pool.shutdown(wait=False, cancel_futures=True)
        log.info("loop lag %s", self.lag.summary())


def fixed_phrases(prompts: Prompts, domain_file: Path) -> list[str]:
    """Every fixed response a caller may hear, each once: the gateway's own phrases, greetings and callback
    lines (``prompts.yml``), and the assistant's ``utter_*`` texts without slots (``domain.yml``). They are
    rendered per call rate when the gateway starts, so each leaves within a frame of the decision."""
    texts = [
        *prompts.phrases.values(),
        *prompts.greeting.values(),
        *prompts.callback.fixed(),
        *domain_fixed_texts(domain_file),
    ]
    return list(dict.fromkeys(texts))


class LineOpening:
    """A phone line's opening hours (``actions.backends.base.PhoneLine``) as the callbacks' calling hours."""

    NEVER_S = 370 * 86400.0
    """How far ahead "never opens again" is put (a line whose branch has no hours in the coming year)."""

    def __init__(self, line: Any) -> None:
        self._line = line

    def is_open(self, t: float) -> bool:
        return bool(self._line.is_open(t))

    def next_open(self, t: float) -> float:
        if self.is_open(t):
            return t
        opens = self._line.next_opening(t)
        return float(opens.timestamp()) if opens is not None else t + self.NEVER_S

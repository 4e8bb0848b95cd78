"""The caller: plays Asterisk's part of one AudioSocket call against the gateway, on a real TCP socket.

It connects like the ``AudioSocket()`` dialplan app (8 kHz, kind ``0x10``) or like
``Dial(AudioSocket/host:port/uuid/c(slin16))`` (16 kHz, kind ``0x12``), optionally registers the caller over
FastAGI first, sends the call UUID, waits for the bot's greeting, then plays the turns in order, waiting for
each reply. Caller audio goes out in 20 ms frames on an absolute schedule (:class:`telephony.pacing.Ticker`);
like a normal channel it keeps sending silence frames between turns, or, with ``silence=False``, nothing while
the caller is quiet (an Asterisk Local channel). The bot's frames are read concurrently and cut into
utterances; its words come from the transcript stream in Redis.

For every turn the latency is *end of caller speech* (last voiced frame sent, text injected, last key sent) to
*first voiced bot frame received*. After the last turn and its reply the caller hangs up (kind ``0x00``)
unless the bot hung up first.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from telephony.audiosocket import (
    RATE_KINDS,
    CallId,
    Decoder,
    ProtocolError,
    encode_audio,
    encode_dtmf,
    encode_hangup,
    encode_text,
    encode_uuid,
)
from telephony.frames import FRAME_MS, SAMPLE_WIDTH, AudioIn, Dtmf, Hangup, PeerError, Transcript, frame_bytes
from telephony.pacing import Clock, MonotonicClock, Ticker
from telephony.sim.agi_client import agi_register
from telephony.sim.audio import resample, speech_span, split_frames
from telephony.sim.echo import EchoPath
from telephony.sim.errors import GatewayUnreachable, SimulatorError
from telephony.sim.report import (
    ENDED_ABORTED,
    ENDED_BOT_HANGUP,
    ENDED_PROTOCOL,
    ENDED_SOCKET_CLOSED,
    ENDED_WE_HUNG_UP,
    LATE_GAP_S,
    CallResult,
    Event,
    TranscriptEntry,
    TurnResult,
)
from telephony.sim.segment import Utterance, UtteranceSegmenter
from telephony.sim.speech import PiperCaller, Synthesize
from telephony.sim.transcript import TranscriptLine, TranscriptReader
from telephony.sim.turns import Turn
from telephony.sim.wav import load_wav

FRAME_S = FRAME_MS / 1000
"""One frame, seconds."""
DTMF_GAP_S = 0.1
"""Between keypad frames, seconds."""
SETTLE_S = 0.8
"""A reply is over when the bot has sent no voiced frame for this long (clock time)."""


@dataclass(slots=True)
class PreparedTurn:
    """A turn ready to play: audio split into 20 ms frames, and its first and last voiced frame."""

    turn: Turn
    frames: list[bytes] = field(default_factory=list)
    span: tuple[int, int] | None = None


@dataclass(slots=True)
class _Out:
    """One outgoing audio frame and where it belongs."""

    pcm: bytes
    result: TurnResult | None = None
    index: int = 0
    span: tuple[int, int] | None = None
    last: bool = False
    done: asyncio.Event | None = None


class CallerSimulator:
    """One simulated call (one :meth:`run` per instance); ``await CallerSimulator(...).run(turns)`` returns a
    :class:`CallResult`.

    ``on_event`` is called with each timeline :class:`Event` as it happens (the CLI prints them).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        rate: int = 8000,
        call_id: uuid.UUID | None = None,
        silence: bool = True,
        wait_s: float = 15.0,
        settle_s: float = SETTLE_S,
        hangup: bool = True,
        redis_url: str | None = "redis://127.0.0.1:6379/0",
        synthesize: Synthesize | None = None,
        voice: Path | None = None,
        on_event: Callable[[Event], None] | None = None,
        clock: Clock | None = None,
        connect_timeout_s: float = 5.0,
        caller_number: str | None = None,
        agi_port: int = 4573,
        echo: EchoPath | None = None,
    ) -> None:
        if rate not in RATE_KINDS:
            raise ValueError(f"AudioSocket has no audio kind for {rate} Hz")
        self.host = host
        self.port = port
        self.rate = rate
        self.call_id = call_id or uuid.uuid4()
        self.silence = silence
        self.wait_s = wait_s
        self.settle_s = settle_s
        self.hangup = hangup
        self.redis_url = redis_url
        self._synthesize = synthesize
        self._voice = voice
        self._on_event = on_event
        self._clock: Clock = clock or MonotonicClock()
        self._connect_timeout_s = connect_timeout_s
        self.caller_number = caller_number
        """When set, registered over FastAGI before dialling, as the dialplan does."""
        self.agi_port = agi_port
        self.echo = echo
        """When set, the bot's voice comes back mixed into every caller frame (a line with echo)."""

        self.result = CallResult(self.call_id, rate)
        self._t0 = 0.0
        self._wall0 = 0.0
        self._writer: asyncio.StreamWriter | None = None
        self._queue: deque[_Out] = deque()
        self._queued = asyncio.Event()
        self._ended = asyncio.Event()
        self._segmenter = UtteranceSegmenter(rate)
        self._last_voice_at: float | None = None
        self._last_start: float | None = None
        self._pending: TurnResult | None = None
        self._silence_frame = bytes(frame_bytes(rate))
        self._wrong_rate_noted = False

    # -- public -------------------------------------------------------------------------------------------

    async def prepare(self, turns: Sequence[Turn]) -> list[PreparedTurn]:
        """Synthesise and load all audio before dialling, so the call's timing is not disturbed."""
        prepared: list[PreparedTurn] = []
        for n, turn in enumerate(turns, start=1):
            item = PreparedTurn(turn)
            pcm: bytes | None = None
            try:
                if turn.kind == "say":
                    pcm = await asyncio.to_thread(self._synth, turn.value)
                elif turn.kind == "wav":
                    pcm = await asyncio.to_thread(load_wav, Path(turn.value), self.rate)
                elif turn.kind == "audio":
                    pcm = turn.pcm
            except (OSError, ValueError, ImportError) as exc:
                raise SimulatorError(f"turn {n} ({turn.kind}): {exc}") from exc
            if pcm is not None:
                item.frames = split_frames(pcm, self.rate)
                item.span = speech_span(item.frames)
            prepared.append(item)
        return prepared

    async def run(self, turns: Sequence[Turn]) -> CallResult:
        """Dial, greet, play every turn waiting for each reply, hang up; return the result."""
        if self._writer is not None:
            raise RuntimeError("a CallerSimulator runs one call; make a new one")
        prepared = await self.prepare(turns)
        if self.caller_number:
            await agi_register(self.host, self.agi_port, self.call_id, self.caller_number, rate=self.rate)
        transcript = await self._open_transcript()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=self._connect_timeout_s
            )
        except (OSError, asyncio.TimeoutError) as exc:
            if transcript is not None:
                await transcript.close()
            reason = str(exc) or type(exc).__name__
            raise GatewayUnreachable(
                f"cannot reach the gateway at {self.host}:{self.port} ({reason}); is it running (make run)?"
            ) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer = writer
        self._t0 = self._clock.now()
        self._wall0 = time.time()
        self.result.wall_start = self._wall0
        writer.write(encode_uuid(self.call_id))
        kind = RATE_KINDS[self.rate]
        self._emit(
            0.0,
            "call",
            f"connected to {self.host}:{self.port}, call {self.call_id}, "
            f"{self.rate} Hz (kind 0x{kind:02x}), {'silence frames' if self.silence else 'no silence'}",
        )
        tasks = [
            asyncio.create_task(self._read_loop(reader), name="sim-reader"),
            asyncio.create_task(self._pump(), name="sim-pump"),
        ]
        transcript_task = (
            asyncio.create_task(transcript.follow(), name="sim-transcript")
            if transcript is not None
            else None
        )
        try:
            await self._script(prepared)
        finally:
            await self._finish(writer, tasks, transcript_task, transcript)
        return self.result

    # -- the script ---------------------------------------------------------------------------------------

    async def _script(self, prepared: list[PreparedTurn]) -> None:
        since = 0.0  # the greeting, then each turn's reply
        for i, item in enumerate(prepared, start=1):
            if item.turn.barge_s is not None:
                await self._await_speech(since, item.turn.barge_s)
            else:
                await self._await_reply(since)
            tr = TurnResult(i, item.turn)
            self.result.turns.append(tr)
            if self._ended.is_set():
                tr.skipped = True
                continue
            if item.turn.kind == "text":
                await self._send_text(item.turn.value, tr)
            elif item.turn.kind == "dtmf":
                await self._send_dtmf(item.turn.value, tr)
            else:
                await self._send_audio(item, tr)
            if tr.ended is not None:
                since = tr.ended
        await self._await_reply(since)
        if self._ended.is_set():
            return
        if not self.hangup:
            self._emit(self._rel(), "call", f"waiting up to {self.wait_s:g} s for the bot to end the call")
            try:
                await asyncio.wait_for(self._ended.wait(), timeout=self.wait_s)
            except asyncio.TimeoutError:
                pass
            if self._ended.is_set():
                return
        await self._send_hangup()

    async def _await_reply(self, since: float) -> bool:
        """Wait until the bot started speaking at or after ``since`` and then went quiet for ``settle_s``;
        give up after ``wait_s``. Returns whether a finished reply was seen."""
        deadline = self._clock.now() + self.wait_s
        while not self._ended.is_set():
            now = self._clock.now()
            rel = now - self._t0
            if (
                self._last_start is not None
                and self._last_start >= since
                and self._last_voice_at is not None
                and rel - self._last_voice_at >= self.settle_s
            ):
                return True
            if now >= deadline:
                self._emit(rel, "call", f"no finished bot reply within {self.wait_s:g} s; going on")
                return False
            await self._clock.sleep_until(now + FRAME_S)
        return False

    async def _await_speech(self, since: float, after_s: float) -> None:
        """Wait until the bot started speaking at or after ``since``, then ``after_s`` more (a caller about to
        talk over it); give up waiting for the bot after ``wait_s``."""
        deadline = self._clock.now() + self.wait_s
        while not self._ended.is_set():
            now = self._clock.now()
            if self._last_start is not None and self._last_start >= since:
                if now - self._t0 >= self._last_start + after_s:
                    return
            elif now >= deadline:
                self._emit(now - self._t0, "call", f"the bot did not speak within {self.wait_s:g} s")
                return
            await self._clock.sleep_until(now + FRAME_S)

    async def _send_audio(self, item: PreparedTurn, tr: TurnResult) -> None:
        if not item.frames:
            return
        done = asyncio.Event()
        self._pending = tr
        last = len(item.frames) - 1
        for i, pcm in enumerate(item.frames):
            self._queue.append(_Out(pcm, tr, i, item.span, i == last, done if i == last else None))
        self._queued.set()
        if item.span is None:
            self._emit(self._rel(), "caller", f"{item.turn.label} (no speech detected in it)")
        ended = asyncio.create_task(self._ended.wait())
        finished = asyncio.create_task(done.wait())
        try:
            await asyncio.wait({ended, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            finished.cancel()
        if item.span is None and tr.ended is None and done.is_set():
            tr.ended = self._rel()  # all of it was "speech end" for latency purposes

    async def _send_text(self, text: str, tr: TurnResult) -> None:
        self._pending = tr
        if not await self._write(encode_text(text)):
            return
        tr.started = tr.ended = self._rel()
        self._emit(tr.ended, "caller", tr.turn.label)

    async def _send_dtmf(self, keys: str, tr: TurnResult) -> None:
        self._pending = tr
        ticker = Ticker(self._clock, DTMF_GAP_S)
        for n, key in enumerate(keys):
            await ticker.tick()
            if not await self._write(encode_dtmf(key)):
                return
            now = self._rel()
            if n == 0:
                tr.started = now
            tr.ended = now
        if tr.ended is not None and tr.started is not None:
            self._emit(tr.started, "caller", f"{tr.turn.label} (last key at {tr.ended:.2f})")

    async def _send_hangup(self) -> None:
        self._emit(self._rel(), "caller", "hangs up (0x00)")
        self._end(ENDED_WE_HUNG_UP)
        await self._write(encode_hangup(), even_if_ended=True)

    # -- frames out ---------------------------------------------------------------------------------------

    async def _write(self, data: bytes, *, even_if_ended: bool = False) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing() or (self._ended.is_set() and not even_if_ended):
            return False
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError):
            self._end(ENDED_SOCKET_CLOSED)
            return False
        return True

    async def _pump(self) -> None:
        """Send queued caller audio (or silence) in 20 ms frames on an absolute schedule."""
        ticker = Ticker(self._clock)
        while not self._ended.is_set():
            if not self._queue and not self.silence:
                ticker.reset()  # a Local channel sends nothing while the caller is quiet
                self._queued.clear()
                await self._queued.wait()
                continue
            await ticker.tick()
            if self._ended.is_set():
                break
            out = self._queue.popleft() if self._queue else _Out(self._silence_frame)
            pcm = out.pcm if self.echo is None else self.echo.mix(out.pcm)
            if not await self._write(encode_audio(pcm, self.rate)):
                break
            if out.result is not None:
                self._mark_sent(out)

    def _mark_sent(self, out: _Out) -> None:
        tr = out.result
        assert tr is not None
        now = self._rel()
        if out.span is not None:
            first, last = out.span
            if out.index == first:
                tr.started = now
                self._emit(now, "caller", f"{tr.turn.label} — speech starts")
            if out.index == last:
                tr.ended = now
                self._emit(now, "caller", f"end of speech ({now - (tr.started or now):.2f} s)")
        if out.last and out.done is not None:
            out.done.set()

    # -- frames in ----------------------------------------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = Decoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self._end(ENDED_SOCKET_CLOSED)
                    return
                now = self._rel()
                for message in decoder.feed(data):
                    self._on_message(message, now)
        except ProtocolError as exc:
            self.result.protocol_error = str(exc)
            self._emit(self._rel(), "bot", f"protocol error: {exc}")
            self._end(ENDED_PROTOCOL)
        except (ConnectionError, OSError):
            self._end(ENDED_SOCKET_CLOSED)

    def _on_message(self, message: object, now: float) -> None:
        result = self.result
        if isinstance(message, AudioIn):
            pcm = message.pcm
            if message.rate != self.rate:
                if not self._wrong_rate_noted:
                    self._wrong_rate_noted = True
                    self._emit(now, "bot", f"sends {message.rate} Hz audio on a {self.rate} Hz call")
                pcm = resample(pcm, message.rate, self.rate)
            if result.last_frame_at is not None:
                gap = now - result.last_frame_at
                result.max_frame_gap_s = max(result.max_frame_gap_s, gap)
                if gap > LATE_GAP_S:
                    result.late_frames += 1
            if self.echo is not None:
                self.echo.heard(pcm)
            result.frames_received += 1
            result.frames_by_rate[message.rate] = result.frames_by_rate.get(message.rate, 0) + 1
            seconds = len(message.pcm) / (message.rate * SAMPLE_WIDTH)
            result.audio_received_s += seconds
            result.last_frame_s = seconds
            if result.first_frame_at is None:
                result.first_frame_at = now
            result.last_frame_at = now
            result.bot_audio += pcm
            began, ended = self._segmenter.feed(now, pcm)
            if self._segmenter.last_voiced:
                self._last_voice_at = now
            if ended is not None:
                self._utterance_ended(ended)
            if began is not None:
                self._utterance_began(began)
        elif isinstance(message, Hangup):
            self._emit(now, "bot", "hangs up (0x00)")
            self._end(ENDED_BOT_HANGUP)
        elif isinstance(message, PeerError):
            result.bot_errors.append(message.code)
            code = "no code" if message.code is None else f"code 0x{message.code:02x}"
            self._emit(now, "bot", f"ERROR frame 0xff ({code})")
        elif isinstance(message, (CallId, Dtmf, Transcript)):
            self._emit(now, "bot", f"unexpected {type(message).__name__} frame")

    def _utterance_began(self, t: float) -> None:
        self._last_start = t
        note = ""
        if self.result.greeting_at is None:
            self.result.greeting_at = t
        tr = self._pending
        if tr is not None and tr.ended is not None and tr.reply_at is None and t >= tr.ended:
            tr.reply_at = t
            note = f"  (latency {t - tr.ended:.2f} s)"
        self._emit(t, "bot", f"speaks{note}")

    def _utterance_ended(self, utterance: Utterance) -> None:
        self.result.utterances.append(utterance)
        self._emit(
            utterance.start + utterance.duration, "bot", f"stops ({utterance.duration:.2f} s of speech)"
        )

    # -- transcript ---------------------------------------------------------------------------------------

    async def _open_transcript(self) -> TranscriptReader | None:
        if not self.redis_url:
            return None
        stream = TranscriptReader(
            self.redis_url,
            self.call_id,
            on_line=self._on_transcript,
            on_problem=self._transcript_problem,
        )
        if not await stream.open():
            return None
        self.result.redis_ok = True
        return stream

    def _transcript_problem(self, text: str) -> None:
        self._emit(0.0 if self._writer is None else self._rel(), "call", text)  # before dialling: time 0
        self.result.redis_ok = False

    def _on_transcript(self, line: TranscriptLine) -> None:
        t = self._rel() if line.t is None else line.t - self._wall0
        self.result.transcript.append(TranscriptEntry(t, line.who, line.text))
        if line.who == "caller":
            self._emit(t, "caller", f'(heard) "{line.text}"')
        elif line.who == "bot":
            self._emit(t, "bot", f'"{line.text}"')
        else:
            self._emit(t, "call", f"[{line.who}] {line.text}")

    # -- ending -------------------------------------------------------------------------------------------

    def _end(self, how: str) -> None:
        if self.result.ended_by is None:
            self.result.ended_by = how
            if how != ENDED_WE_HUNG_UP:
                self._emit(self._rel(), "call", how)
        self._ended.set()
        self._queued.set()  # wake the pump so it can stop

    async def _finish(
        self,
        writer: asyncio.StreamWriter,
        tasks: list[asyncio.Task[None]],
        transcript_task: asyncio.Task[None] | None,
        transcript: TranscriptReader | None,
    ) -> None:
        self._end(ENDED_ABORTED)  # no-op when the script ended the call
        reader_task, pump_task = tasks
        pump_task.cancel()
        # let the gateway see our hangup and close its side; its last frames still count
        try:
            await asyncio.wait_for(asyncio.shield(reader_task), timeout=1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        self.result.duration_s = self._rel()
        last = self._segmenter.close()
        if last is not None:
            self._utterance_ended(last)
        if transcript is not None:
            await transcript.finish(transcript_task)
            self.result.redis_ok = transcript.ok
        self.result.events.sort(key=lambda e: e.t)

    # -- helpers ------------------------------------------------------------------------------------------

    def _rel(self) -> float:
        return self._clock.now() - self._t0

    def _emit(self, t: float, side: str, text: str) -> None:
        event = Event(t, side, text)
        self.result.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def _synth(self, text: str) -> bytes:
        if self._synthesize is None:
            self._synthesize = PiperCaller(self._voice).synthesize
        return self._synthesize(text, self.rate)

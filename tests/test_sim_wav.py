"""The simulator's audio files: WAV (and whatever else libsndfile reads) in, 16-bit mono WAV out.

Files are written with soundfile in every encoding a caller's recording may come in and read back through
the simulator's loader, sample by sample; a few are built byte by byte, to pin decoding to the standards.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from telephony.sim.wav import load_wav, read_wav, write_wav
from tests.test_simulate_unit import tone


def test_write_wav_round_trip(tmp_path: Path) -> None:
    pcm = tone(0.5, 16000)
    path = tmp_path / "sub" / "bot.wav"
    write_wav(path, pcm, 16000)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == pcm


def _riff(tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False) -> bytes:
    align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd-sized chunk with a pad byte
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _signal(n: int, channels: int, rate: int) -> npt.NDArray[np.int16]:
    """``channels`` different tones at 0.9 and 0.4 of full scale, as 16-bit samples, shape (n, channels)."""
    t = np.arange(n) / rate
    tones = [0.9 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 1000 * t + 1.0)][:channels]
    return np.round(np.stack(tones, axis=1) * 32767).astype(np.int16)


# (libsndfile subtype, channels, rate): every encoding a --wav file may come in, mono and stereo, many rates.
WAV_CASES = [
    ("PCM_U8", 1, 8000),
    ("PCM_16", 1, 8000),
    ("PCM_16", 2, 44100),
    ("PCM_24", 1, 48000),
    ("PCM_32", 2, 16000),
    ("FLOAT", 1, 22050),
    ("DOUBLE", 2, 11025),
    ("ULAW", 1, 8000),
    ("ALAW", 2, 8000),
]


@pytest.mark.parametrize(("subtype", "channels", "rate"), WAV_CASES)
def test_read_wav_encodings(tmp_path: Path, subtype: str, channels: int, rate: int) -> None:
    """Files written with soundfile read back through the simulator's loader: rate kept, channels averaged,
    samples as stored (exactly for PCM and float, within G.711's quantisation for A-law and mu-law)."""
    ints = _signal(rate // 10, channels, rate)
    path = tmp_path / f"{subtype}-{channels}-{rate}.wav"
    if subtype == "PCM_24":
        stored = ints.astype(np.int32) << 16  # libsndfile keeps the top 24 bits: exactly the 16-bit values
    elif subtype == "PCM_32":
        stored = ints.astype(np.int32) << 16
    elif subtype in ("FLOAT", "DOUBLE"):
        stored = ints / 32768.0  # exactly representable in float32
    else:
        stored = ints
    soundfile.write(str(path), stored, rate, subtype=subtype, format="WAV")
    assert soundfile.info(str(path)).subtype == subtype

    samples, file_rate = read_wav(path)
    assert file_rate == rate
    assert samples.dtype == np.float64 and samples.shape == (len(ints),)
    exact = ints.astype(np.float64) / 32768.0
    if subtype == "PCM_U8":
        exact = np.floor(ints / 256.0) / 128.0  # libsndfile keeps the top 8 bits
    expected = exact.mean(axis=1)
    if subtype in ("ULAW", "ALAW"):
        # G.711: half a step of the sample's segment, at most 1/32 of its value (plus the finest steps near 0)
        error = np.abs(samples - expected)
        bound = np.abs(exact).max(axis=1) / 32 + 16 / 32768
        assert np.all(error <= bound), float((error - bound).max())
        assert error.max() > 0  # it really was companded
    else:
        assert samples == pytest.approx(expected, abs=1e-12)


def test_read_wav_decodes_g711_bytes_to_the_standard_values(tmp_path: Path) -> None:
    """Hand-built files: G.711 code words decode to the values of the standard's tables; float in a
    WAVE_FORMAT_EXTENSIBLE file; an odd-sized chunk before the data; broken files raise ValueError."""
    path = tmp_path / "x.wav"

    def load(data: bytes) -> npt.NDArray[np.float64]:
        path.write_bytes(data)
        return read_wav(path)[0]

    # mu-law 0xff is 0, 0x80 is +32124, 0x00 is -32124; A-law 0xd5 is +8, 0x55 is -8, 0xaa is +32256
    mu = load(_riff(7, 1, 8000, 8, bytes([0xFF, 0x80, 0x00]))) * 32768
    assert list(mu) == [0, 32124, -32124]
    alaw = load(_riff(6, 1, 8000, 8, bytes([0xD5, 0x55, 0xAA]))) * 32768
    assert list(alaw) == [8, -8, 32256]

    left = np.array([0.5, -0.5, 0.25], dtype=np.float64)
    f32 = left.astype("<f4").tobytes()
    assert list(load(_riff(3, 1, 22050, 32, f32))) == list(left)
    assert list(load(_riff(3, 1, 22050, 32, f32, extensible=True))) == list(left)

    ints24 = [round(x * 8388608) for x in left]
    data24 = b"".join(v.to_bytes(3, "little", signed=True) for v in ints24)
    assert list(load(_riff(1, 1, 8000, 24, data24))) == list(left)
    assert list(load(_riff(1, 1, 8000, 8, bytes([128 + 64, 128 - 64])))) == [0.5, -0.5]

    with pytest.raises(ValueError):
        load(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(ValueError):
        load(_riff(2, 1, 8000, 4, b"\x00\x00"))  # ADPCM with a truncated fmt chunk
    with pytest.raises(ValueError):
        load(b"this is not audio at all" * 10)
    with pytest.raises(ValueError):
        read_wav(tmp_path / "missing.wav")


def test_load_wav_at_the_call_rate_is_bit_exact(tmp_path: Path) -> None:
    ints = _signal(1600, 1, 8000)
    path = tmp_path / "caller.wav"
    soundfile.write(str(path), ints, 8000, subtype="PCM_16", format="WAV")
    assert load_wav(path, 8000) == ints.astype("<i2").tobytes()
    stereo = _signal(1600, 2, 16000)
    soundfile.write(str(path), stereo, 16000, subtype="PCM_16", format="WAV")
    mixed = np.frombuffer(load_wav(path, 16000), dtype="<i2")
    assert list(mixed) == list(np.round(stereo.astype(np.float64).mean(axis=1)).astype(np.int16))


def test_load_wav_other_formats_and_rates(tmp_path: Path) -> None:
    """A 22.05 kHz float file and a 48 kHz A-law stereo one, resampled to 16 kHz: right length, same tone."""
    for subtype, channels, rate in (("FLOAT", 1, 22050), ("ALAW", 2, 48000)):
        path = tmp_path / f"{subtype}.wav"
        ints = _signal(rate, channels, rate)  # one second
        data = ints / 32768.0 if subtype == "FLOAT" else ints
        soundfile.write(str(path), data, rate, subtype=subtype, format="WAV")
        samples = np.frombuffer(load_wav(path, 16000), dtype="<i2").astype(np.float64)
        assert abs(len(samples) - 16000) <= 2
        spectrum = np.abs(np.fft.rfft(samples[2000:14000]))
        assert np.argmax(spectrum) * 16000 / 12000 == pytest.approx(440, abs=2)
        level = np.sqrt(np.mean(samples[2000:14000] ** 2))
        expected = np.sqrt(np.mean(ints.astype(np.float64).mean(axis=1) ** 2))
        assert level == pytest.approx(expected, rel=0.03)


def test_wav_of_an_empty_call_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    write_wav(path, b"", 8000)
    assert load_wav(path, 8000) == b""
    assert read_wav(path)[1] == 8000


def test_load_wav_resamples_to_call_rate(tmp_path: Path) -> None:
    path = tmp_path / "caller.wav"
    seconds = 1.0
    n = int(44100 * seconds)
    t = np.arange(n) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], axis=1) * 0.5
    path.write_bytes(_riff(1, 2, 44100, 16, (stereo.reshape(-1) * 32767).astype("<i2").tobytes()))
    pcm = load_wav(path, 8000)
    samples = np.frombuffer(pcm, dtype="<i2")
    assert abs(len(samples) - 8000) <= 2
    rms = math.sqrt(float(np.mean(samples.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.5 * 32767 / math.sqrt(2), rel=0.05)

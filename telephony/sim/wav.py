"""WAV files in and out, through libsndfile (the ``soundfile`` package, which bundles it in its wheel).

Reading takes whatever libsndfile reads — WAV in 8/16/24/32-bit PCM, 32/64-bit float, A-law, mu-law, ADPCM,
``WAVE_FORMAT_EXTENSIBLE``, any rate and channel count, and other containers such as FLAC — mixes it down to
mono and resamples it to the call's rate with soxr. Anything it cannot read raises :class:`ValueError`.
Writing produces plain 16-bit mono PCM WAV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from telephony.sim.audio import to_int16


def read_wav(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """Samples of an audio file as float64 mono in [-1, 1] (channels averaged), and its rate in Hertz."""
    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except soundfile.SoundFileError as exc:
        raise ValueError(str(exc)) from exc
    samples = np.asarray(data, dtype=np.float64)
    if samples.shape[1] < 1 or rate < 1:
        raise ValueError(f"{path}: no channels or no rate")
    return np.clip(samples.mean(axis=1), -1.0, 1.0), int(rate)


def load_wav(path: Path, rate: int) -> bytes:
    """An audio file as 16-bit mono PCM at ``rate`` Hertz (soxr, high quality)."""
    samples, file_rate = read_wav(path)
    if file_rate != rate and len(samples):
        samples = np.asarray(soxr.resample(samples, file_rate, rate, quality="HQ"), dtype=np.float64)
    return to_int16(samples)


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """16-bit mono PCM to a WAV file (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    soundfile.write(str(path), samples, rate, subtype="PCM_16", format="WAV")

"""Caller audio as the simulator sends it: 16-bit mono PCM cut into 20 ms frames, levels, resampling.

Resampling uses soxr (high quality) directly; the simulator shares no audio code with the gateway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from telephony.frames import SAMPLE_WIDTH, frame_bytes

CALLER_VOICE_FLOOR_RMS = 50.0
"""Caller audio frames quieter than this (or than 2 % of the loudest frame) are not speech."""


def frame_rms(pcm: bytes) -> float:
    """Root mean square of 16-bit little-endian samples (0 for empty input)."""
    if len(pcm) < SAMPLE_WIDTH:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH], dtype="<i2").astype(np.float64)
    return float(math.sqrt(float(np.mean(samples * samples))))


def split_frames(pcm: bytes, rate: int) -> list[bytes]:
    """20 ms frames; the last one padded with silence."""
    size = frame_bytes(rate)
    frames = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1] + bytes(size - len(frames[-1]))
    return frames


def speech_span(frames: Sequence[bytes]) -> tuple[int, int] | None:
    """First and last voiced frame (RMS above the floor and 2 % of the loudest frame's), or ``None``."""
    levels = [frame_rms(f) for f in frames]
    if not levels:
        return None
    threshold = max(CALLER_VOICE_FLOOR_RMS, 0.02 * max(levels))
    voiced = [i for i, level in enumerate(levels) if level > threshold]
    return (voiced[0], voiced[-1]) if voiced else None


def to_int16(samples: npt.NDArray[np.floating[Any]]) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM (clipped).

    The scale is 32768, the one libsndfile reads integer samples with, so 16-bit audio survives the round trip
    bit for bit."""
    scaled = np.clip(np.round(samples * 32768.0), -32768, 32767)
    return bytes(scaled.astype("<i2").tobytes())


def resample(pcm: bytes, rate_in: int, rate_out: int) -> bytes:
    """16-bit mono PCM from ``rate_in`` to ``rate_out`` Hertz (soxr, high quality; a whole buffer)."""
    if rate_in == rate_out or not pcm:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH], dtype="<i2")
    out = soxr.resample(samples, rate_in, rate_out, quality="HQ")
    return bytes(np.asarray(out, dtype="<i2").tobytes())

"""The callers' lines for the turn-taking benchmark: WAV files with known speech end times.

Synthesised once per run with Piper (the simulator's caller voice) into a temporary folder. Some lines get a
natural mid-sentence pause of 0.4-0.9 s spliced in (the first part's trailing silence cut, exact silence
inserted, the second part's leading silence cut), so a turn that ends inside the pause is a false cut. For
each file the benchmark knows where speech starts and ends and where the pause lies, to the 10 ms window.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from telephony.sim.speech import PiperCaller
from telephony.sim.wav import write_wav

Pcm = npt.NDArray[np.int16]
RATE = 8000
WINDOW = RATE // 100  # 10 ms
LEAD_S = 0.2
"""Silence before the speech in each file."""
TAIL_S = 0.1
"""Silence after it (the simulator then sends silence frames as a line does)."""
VOICE_FLOOR_RMS = 50.0

PLAIN = (
    "hello i would like to check my account balance please",
    "where is my order",
    "i need to book an appointment for next week",
    "what time do you open on saturday",
)
PAUSED = (
    ("i would like to check", 0.6, "the balance of my account please"),
    ("can you tell me", 0.8, "where my order is"),
    ("i need an appointment", 0.5, "for next tuesday morning"),
    ("what are", 0.9, "your opening hours on sunday"),
    ("my parcel has not", 0.4, "arrived yet"),
)


@dataclass(frozen=True)
class Line:
    """One caller line on disk."""

    name: str
    text: str
    path: str
    speech_start_s: float
    speech_end_s: float
    """Where the last voiced 10 ms window ends, seconds from the start of the file."""
    pause: tuple[float, float] | None = None
    """The spliced pause, start and end, seconds from the start of the file."""


def _voiced_windows(pcm: Pcm) -> npt.NDArray[np.intp]:
    n = len(pcm) // WINDOW
    win = pcm[: n * WINDOW].astype(np.float64).reshape(n, WINDOW)
    rms = np.sqrt((win * win).mean(axis=1))
    threshold = max(VOICE_FLOOR_RMS, 0.02 * float(rms.max())) if n else VOICE_FLOOR_RMS
    return np.flatnonzero(rms > threshold)


def _trim(pcm: Pcm) -> Pcm:
    """The speech only: leading and trailing silence cut at the first and last voiced 10 ms window."""
    voiced = _voiced_windows(pcm)
    if not len(voiced):
        return pcm[:0]
    return pcm[voiced[0] * WINDOW : (voiced[-1] + 1) * WINDOW]


def _pcm(voice: PiperCaller, text: str) -> Pcm:
    return np.frombuffer(voice.synthesize(text, RATE), dtype="<i2").copy()


def build(folder: Path, voice: PiperCaller | None = None) -> list[Line]:
    """Write every line's WAV into ``folder`` and a ``lines.json`` describing them; return the lines."""
    voice = voice or PiperCaller()
    folder.mkdir(parents=True, exist_ok=True)
    lead = np.zeros(round(LEAD_S * RATE), dtype="<i2")
    tail = np.zeros(round(TAIL_S * RATE), dtype="<i2")
    lines: list[Line] = []
    for n, text in enumerate(PLAIN):
        speech = _trim(_pcm(voice, text))
        lines.append(_write(folder, f"plain{n}", text, [lead, speech, tail], None))
    for n, (first, pause_s, second) in enumerate(PAUSED):
        a, b = _trim(_pcm(voice, first)), _trim(_pcm(voice, second))
        gap = np.zeros(round(pause_s * RATE), dtype="<i2")
        start = round((len(lead) + len(a)) / RATE, 3)
        lines.append(
            _write(
                folder,
                f"paused{n}",
                f"{first} ... {second}",
                [lead, a, gap, b, tail],
                (start, round(start + pause_s, 3)),
            )
        )
    (folder / "lines.json").write_text(json.dumps([asdict(x) for x in lines], indent=2))
    return lines


def _write(folder: Path, name: str, text: str, parts: list[Pcm], pause: tuple[float, float] | None) -> Line:
    pcm = np.concatenate(parts)
    voiced = _voiced_windows(pcm)
    path = folder / f"{name}.wav"
    write_wav(path, pcm.tobytes(), RATE)
    return Line(
        name,
        text,
        str(path),
        round(voiced[0] * WINDOW / RATE, 3),
        round((voiced[-1] + 1) * WINDOW / RATE, 3),
        pause,
    )

"""Turn-taking: when the caller has finished, and whether sound heard while the bot talks is the caller.

End of turn (:class:`AdaptivePolicy`, used by :class:`bot.vad.Endpointer`): the trailing silence that ends an
utterance is chosen from what is known when the caller falls silent, first match wins::

    partial ends in a hesitation ("um", "and", "my number is")     hesitation_s   (1.2 s)   "hesitation"
    the dialogue expects digits, a date or an address              expecting_s    (1.2 s)   "expecting:<kind>"
    a stable partial (decoded up to the last speech) that the
    completeness hook does not reject                               complete_s     (0.25 s)  "complete"
    anything else (no words yet, the recogniser lags)              trailing_silence_s (0.6) "unsure"

The completeness hook is where an NLU parse of the stable partial can plug in (it may say "not complete" to
wait longer); without one, a stable partial that does not end in a hesitation counts as complete.
``ATTENDANT_ENDPOINTING=fixed`` keeps the old fixed silence for everything.

Barge-in (:class:`EchoReference`, :func:`is_backchannel`): the bot's own voice comes back from the line
10-20 dB down and 20-120 ms late. Caller audio counts as speech while the bot talks only if its energy is
above the loudest frame the bot sent within the echo window minus a margin; and a short utterance whose words
are only a backchannel ("mm-hmm", "yeah") does not stop the bot. The word lists are editors' data
(``nlu-data/turntaking.yml``).
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actions.shared.paths import NLU_DATA
from actions.shared.yamlfile import YamlFileError, read_yaml
from bot.vad import EndpointerConfig

TURN_WORDS_FILE = NLU_DATA / "turntaking.yml"
EXPECTING = ("digits", "date", "address", "free")
"""What the dialogue may be waiting for (the context's ``expecting``)."""
SILENT_DB = -120.0
"""Energy of an all-zero frame, dBFS."""

Completeness = Callable[[str, str], "bool | None"]
"""Hook: ``(partial, expecting) -> True`` (complete), ``False`` (wait) or ``None`` (no opinion)."""


def words_of(text: str) -> tuple[str, ...]:
    """Lower-case words, punctuation and hyphens dropped ("Mm-hmm," -> ("mm", "hmm")); apostrophes kept."""
    return tuple(re.sub(r"[^\w']+", " ", text.lower()).split())


@dataclass(frozen=True, slots=True)
class TurnWords:
    """The editable word lists, as word tuples."""

    hesitations: tuple[tuple[str, ...], ...] = ()
    backchannels: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def of(cls, hesitations: Iterable[str] = (), backchannels: Iterable[str] = ()) -> TurnWords:
        return cls(
            tuple(w for p in hesitations if (w := words_of(p))),
            tuple(w for p in backchannels if (w := words_of(p))),
        )

    @classmethod
    def load(cls, path: Path = TURN_WORDS_FILE) -> TurnWords:
        """Read ``hesitations`` and ``backchannels`` (lists of phrases); a missing file means none."""
        try:
            data = read_yaml(path)
        except FileNotFoundError:
            return cls()
        data = data or {}
        if not isinstance(data, dict):
            raise YamlFileError(f"{path}: expected 'hesitations:' and 'backchannels:' lists")
        lists = []
        for key in ("hesitations", "backchannels"):
            items = data.get(key) or []
            if not isinstance(items, list) or not all(isinstance(i, (str, int)) for i in items):
                raise YamlFileError(f"{path}: '{key}' must be a list of words or phrases")
            lists.append([str(i) for i in items])
        return cls.of(*lists)

    def ends_in_hesitation(self, text: str) -> bool:
        """The words end with one of the hesitation phrases."""
        words = words_of(text)
        return any(len(words) >= len(h) and words[-len(h) :] == h for h in self.hesitations)

    def is_backchannel(self, text: str) -> bool:
        """The words are nothing but backchannel phrases ("mm hmm", "yeah yeah", "ok right")."""
        words = words_of(text)
        if not words:
            return False
        i = 0
        while i < len(words):
            match = max((len(b) for b in self.backchannels if words[i : i + len(b)] == b), default=0)
            if not match:
                return False
            i += match
        return True


class AdaptivePolicy:
    """The adaptive end-of-turn rule (see the module docstring); stateless, so calls may share one."""

    def __init__(
        self, config: EndpointerConfig, words: TurnWords, completeness: Completeness | None = None
    ) -> None:
        self._c = config
        self._words = words
        self.completeness = completeness
        """Optional judge of a stable partial (e.g. an NLU parse); ``False`` makes the endpointer wait."""

    def silence(self, partial: str, caught_up: bool, expecting: str) -> tuple[float, str]:
        c = self._c
        if partial and self._words.ends_in_hesitation(partial):
            return c.hesitation_s, "hesitation"
        if expecting in ("digits", "date", "address"):
            return c.expecting_s, f"expecting:{expecting}"
        if caught_up and partial:
            verdict = self.completeness(partial, expecting) if self.completeness is not None else None
            if verdict is not False:
                return c.complete_s, "complete"
        return c.trailing_silence_s, "unsure"


def frame_db(pcm: bytes) -> float:
    """Mean energy of 16-bit PCM, dB relative to full scale (an all-zero frame is :data:`SILENT_DB`)."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    if not samples.size:
        return SILENT_DB
    x = samples.astype(np.float64)
    power = float(np.dot(x, x)) / x.size / (32768.0**2)  # one pass, no squared temporary (every frame)
    return max(SILENT_DB, 10.0 * math.log10(power)) if power > 0 else SILENT_DB


class EchoReference:
    """Energies of the frames the bot just sent (a short ring buffer), to tell the caller from the echo."""

    def __init__(self, window_s: float = 0.16, margin_db: float = 6.0) -> None:
        self.window_s = window_s
        self.margin_db = margin_db
        self._sent: collections.deque[tuple[float, float]] = collections.deque()

    def sent(self, now: float, pcm: bytes) -> None:
        """One outbound frame went out at ``now``."""
        # strip() finds an all-zero frame (the pacer's silence, most frames) in C; any() iterated bytes
        self._sent.append((now, frame_db(pcm) if pcm.strip(b"\x00") else SILENT_DB))
        while self._sent and self._sent[0][0] < now - self.window_s:
            self._sent.popleft()

    def reference_db(self, now: float) -> float:
        """The loudest frame sent within the echo window before ``now``."""
        return max((db for t, db in self._sent if now - self.window_s <= t <= now), default=SILENT_DB)

    def above_echo(self, now: float, pcm: bytes, level_db: float | None = None) -> bool:
        """Whether inbound ``pcm`` (whose level may be given) is louder than the bot's echo could be (always,
        while the bot is quiet)."""
        ref = self.reference_db(now)
        if ref <= SILENT_DB:
            return True
        return (frame_db(pcm) if level_db is None else level_db) > ref - self.margin_db

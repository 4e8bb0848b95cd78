"""Voice activity and end of utterance, on the clock.

Inbound audio is not guaranteed to be continuous (a Local channel sends nothing while the caller is silent),
so the end of an utterance cannot wait for silence frames: :class:`Endpointer` is pure state driven by two
calls, :meth:`Endpointer.frame` for each frame's speech/no-speech verdict and :meth:`Endpointer.tick` on a
timer, both given the current time. A missing frame counts as silence. The recogniser's own endpointer may
finish an utterance earlier; this one guarantees it finishes.

The per-frame verdict comes from the WebRTC VAD (``webrtcvad-wheels``), which takes 10/20/30 ms frames at 8,
16, 32 or 48 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    """Timings, seconds."""

    speech_start_s: float = 0.06
    """Voiced time within ``start_window_s`` that opens an utterance."""
    start_window_s: float = 0.2
    """Window for ``speech_start_s``."""
    trailing_silence_s: float = 0.6
    """Silence (or no frames at all) after speech that ends an utterance."""
    max_utterance_s: float = 15.0
    """An utterance longer than this is ended regardless."""
    barge_in_s: float = 0.3
    """Continuous-ish speech while the bot talks that counts as the caller interrupting."""
    mode: str = "adaptive"
    """``adaptive``: the silence that ends a turn depends on the partial result and on what the dialogue
    expects (:mod:`bot.turntaking`); ``fixed``: always ``trailing_silence_s`` (``ATTENDANT_ENDPOINTING``)."""
    complete_s: float = 0.25
    """Adaptive: silence after a stable partial that looks like a complete turn."""
    expecting_s: float = 1.2
    """Adaptive: silence while the dialogue expects a digit string, a date or an address."""
    hesitation_s: float = 1.2
    """Adaptive: silence after a partial ending in a hesitation ("um", "and", "my number is")."""
    echo_margin_db: float = 6.0
    """Caller audio counts as speech while the bot talks only if louder than the loudest frame the bot sent
    within ``echo_window_s`` minus this margin (telephone echo comes back 10-20 dB down)."""
    echo_window_s: float = 0.16
    """How far back the outbound reference reaches: the longest echo delay (120 ms), a frame, jitter."""
    backchannel_max_s: float = 0.8
    """Speech while the bot talks whose words are only a backchannel ("mm-hmm", "yeah") interrupts only if it
    goes on this long."""
    speculate: bool = True
    """Adaptive: parse the stable partial while waiting for the end of the turn (:mod:`bot.speculation`); a
    confident intent ends the turn after ``complete_s`` and the turn is sent at the decision, anything else
    waits ``trailing_silence_s`` (``ATTENDANT_SPECULATE``)."""
    confident: float = 0.8
    """Speculation: the intent confidence that counts as a complete request (``ATTENDANT_TURN_CONFIDENT``)."""
    parse_timeout_s: float = 0.15
    """Speculation: a parse slower than this is ignored and the fixed rule applies
    (``ATTENDANT_PARSE_TIMEOUT_S``)."""
    tail_db: float = 35.0
    """The end of speech is the last voiced frame within this many dB of the utterance's loudest one (and
    above the line's noise): the VAD keeps saying "speech" for about 100 ms after the voice has faded, and
    that hangover is not counted as speech the caller is still making (``ATTENDANT_SPEECH_TAIL_DB``)."""

    def __post_init__(self) -> None:
        if self.mode not in ("adaptive", "fixed"):
            raise ValueError(f"endpointing mode {self.mode!r} must be adaptive or fixed")
        for name in (
            "trailing_silence_s",
            "complete_s",
            "expecting_s",
            "hesitation_s",
            "echo_window_s",
            "parse_timeout_s",
            "tail_db",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class Decision:
    """Why an utterance ended: what a benchmark counts (false cuts by rule)."""

    rule: str
    """``fixed``, ``complete``, ``expecting:<kind>``, ``hesitation``, ``unsure`` or ``max-length``."""
    silence_s: float
    """Trailing silence waited before the end was declared, seconds."""


class TurnPolicy(Protocol):
    """How much trailing silence ends the current utterance (:class:`bot.turntaking.AdaptivePolicy`)."""

    def silence(self, partial: str, caught_up: bool, expecting: str) -> tuple[float, str]:
        """(seconds of silence needed, the rule's name) for this partial and dialogue expectation."""
        ...


class Event(Enum):
    """What the endpointer decided."""

    START = "start"
    END = "end"


NOISE_MARGIN_DB = 6.0
"""A voiced frame this close to the line's noise level is the VAD's hangover, not the caller's voice."""
NOISE_RISE = 0.02
"""How fast the line's noise level follows a louder unvoiced frame (a quieter one lowers it at once)."""
NEAR_PEAK_DB = 20.0
"""A voiced frame this close to the utterance's loudest is the caller's voice, whatever the noise estimate
says (a quiet caller on a noisy line is never taken for silence)."""


class Endpointer:
    """Start and end of caller utterances from per-frame VAD verdicts and a clock.

    Given frame levels, the silence that ends a turn runs from the caller's last *audible* voiced frame: the
    WebRTC VAD's hangover (five 20 ms frames after the voice has faded, whatever the line carries) is not
    speech, so it does not delay the answer (:attr:`EndpointerConfig.tail_db`).
    """

    def __init__(self, config: EndpointerConfig | None = None, policy: TurnPolicy | None = None) -> None:
        self.config = config or EndpointerConfig()
        self.policy = policy
        """``None``: the fixed rule (``trailing_silence_s``)."""
        self.expecting = "free"
        """What the dialogue asked for: ``digits``, ``date``, ``address`` or ``free``."""
        self.last_decision: Decision | None = None
        """Why the last utterance ended."""
        self.last_partial = ""
        """The recogniser's words when the last utterance ended (its final result may come later)."""
        self._partial = ""
        self._partial_covers = 0.0
        self.in_utterance = False
        self._voiced: list[tuple[float, float]] = []  # (time, seconds voiced) within the start window
        self._started_at = 0.0
        self._last_speech_at = 0.0
        self._speech_run_s = 0.0
        self._last_frame_at: float | None = None
        self._peak_db: float | None = None
        """The loudest voiced frame of the open utterance, dBFS."""
        self.noise_db: float | None = None
        """The line's level when the VAD hears no speech (it follows the quietest unvoiced frames and rises
        only slowly), dBFS."""

    @property
    def speech_run_s(self) -> float:
        """Voiced seconds in the current utterance (drives barge-in)."""
        return self._speech_run_s

    def frame(
        self, now: float, voiced: bool, duration_s: float, level_db: float | None = None
    ) -> Event | None:
        """One frame's verdict at time ``now`` and, when known, its level (dBFS). Returns START when an
        utterance opens."""
        c = self.config
        self._last_frame_at = now
        if not self.in_utterance:
            if voiced:
                self._voiced.append((now, duration_s))
            self._voiced = [(t, d) for t, d in self._voiced if now - t <= c.start_window_s]
            if sum(d for _, d in self._voiced) >= c.speech_start_s:
                self.in_utterance = True
                self._started_at = now
                self._last_speech_at = now
                self._speech_run_s = sum(d for _, d in self._voiced)
                self._voiced.clear()
                self._peak_db = level_db
                return Event.START
            return None
        if voiced:
            if self._audible(level_db):
                self._last_speech_at = now
            self._speech_run_s += duration_s
        return self._check(now)

    def quiet(self, level_db: float) -> None:
        """A frame the VAD heard no speech in, at this level (dBFS): it tracks the line's noise level. Only
        while the bot is quiet: not for frames that only the echo gate silenced, nor for the fading echo of
        the bot's voice."""
        if self.noise_db is None or level_db < self.noise_db:
            self.noise_db = level_db
        else:
            self.noise_db += NOISE_RISE * (level_db - self.noise_db)

    def _audible(self, level_db: float | None) -> bool:
        """Whether a voiced frame at this level is the caller's voice rather than the VAD's hangover."""
        if level_db is None:
            return True
        if self._peak_db is None or level_db > self._peak_db:
            self._peak_db = level_db
        if level_db < self._peak_db - self.config.tail_db:
            return False
        if level_db >= self._peak_db - NEAR_PEAK_DB:
            return True
        return self.noise_db is None or level_db >= self.noise_db + NOISE_MARGIN_DB

    def hear(self, partial: str, covers: float) -> None:
        """The recogniser's words so far for the open utterance, decoded from audio up to time ``covers``."""
        if self.in_utterance:
            self._partial, self._partial_covers = partial, covers

    def silence_at(self, now: float) -> float:
        """Seconds since the caller's last voiced frame in the open utterance (0 when none is open)."""
        return now - self._last_speech_at if self.in_utterance else 0.0

    @property
    def partial(self) -> str:
        """The recogniser's words so far in the open utterance."""
        return self._partial

    def needed_silence(self) -> tuple[float, str]:
        """Trailing silence that would end the utterance now, and the rule that says so."""
        if self.policy is None:
            return self.config.trailing_silence_s, "fixed"
        caught_up = bool(self._partial) and self._partial_covers >= self._last_speech_at - 0.001
        return self.policy.silence(self._partial, caught_up, self.expecting)

    def tick(self, now: float) -> Event | None:
        """Timer: ends an utterance after trailing silence even when no frames arrive."""
        if not self.in_utterance:
            return None
        return self._check(now)

    def _check(self, now: float) -> Event | None:
        c = self.config
        silence = now - self._last_speech_at
        needed, rule = self.needed_silence()
        if silence < needed and now - self._started_at < c.max_utterance_s:
            return None
        self.last_decision = Decision(rule if silence >= needed else "max-length", round(silence, 3))
        self.last_partial = self._partial
        self.reset()
        return Event.END

    def reset(self) -> None:
        """Forget the current utterance (the recogniser finished it, or the call moved on)."""
        self.in_utterance = False
        self._voiced.clear()
        self._speech_run_s = 0.0
        self._peak_db = None
        self._partial, self._partial_covers = "", 0.0


class WebRtcVad:
    """Frame classifier backed by the WebRTC VAD."""

    RATES = (8000, 16000, 32000, 48000)

    def __init__(self, aggressiveness: int = 2) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, pcm: bytes, rate: int) -> bool:
        """Verdict for one 10, 20 or 30 ms frame; other sizes or rates are judged in 20 ms slices."""
        if rate not in self.RATES:
            raise ValueError(f"WebRTC VAD does not take {rate} Hz")
        step = rate * 20 // 1000 * 2
        if len(pcm) in (step // 2, step, step * 3 // 2):
            return bool(self._vad.is_speech(pcm, rate))
        slices = [pcm[i : i + step] for i in range(0, len(pcm) - step + 1, step)]
        return any(self._vad.is_speech(s, rate) for s in slices)

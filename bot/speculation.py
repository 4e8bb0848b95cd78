"""Speculation: understand the caller's words while the end of the turn is still being waited for.

While the endpointer waits in the trailing silence, the stable partial (decoded up to the caller's last
speech) is sent to the assistant's parse-only route (``POST /webhooks/attendant/parse``: intent, confidence,
entities; no tracker is created or touched). The answer is used twice:

- **End of turn** (the completeness hook of :class:`bot.turntaking.AdaptivePolicy`): a confident intent
  (``confidence >= confident``, not ``nlu_fallback``) ends the turn after the short silence (``complete_s``);
  anything else, a parse still in flight, a parse slower than ``timeout_s`` or a failed one, leaves the fixed
  rule (``trailing_silence_s``). Hesitations and an expected digit string, date or address are decided
  before the hook is asked (they wait longer whatever the parse says).
- **Commit at the decision**: when the turn ends on that confident speculation and the words at the decision
  are the words parsed, the turn is sent at once (:meth:`Speculator.committable`) instead of after the
  recogniser's final result; the assistant reuses the parse it already made. The turn still goes through
  the normal route: the tracker records only committed turns. A speculation that is discarded (the caller
  went on, the words changed) never reaches the tracker.

The cost is bounded: at most one parse in flight per call, none for words already parsed, each capped at
``timeout_s``. Words are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.dialogue import Parsed

log = logging.getLogger(__name__)

NOT_UNDERSTOOD = "nlu_fallback"


@dataclass
class SpeculationStats:
    """What speculation did in one call (counts only: no words)."""

    parses: int = 0
    """Parses sent."""
    busy: int = 0
    """Times new words waited because a parse was still in flight."""
    timeouts: int = 0
    failures: int = 0
    confident: int = 0
    """Parses confident enough to end the turn early."""
    committed: int = 0
    """Turns sent at the decision on a speculation."""
    final_differs: int = 0
    """...whose recogniser final turned out to differ from the words committed."""


class Speculator:
    """One call's speculative parses (see the module docstring)."""

    def __init__(
        self,
        parse: Callable[[str], Awaitable[Parsed]],
        *,
        clock: Callable[[], float],
        confident: float = 0.8,
        timeout_s: float = 0.15,
    ) -> None:
        self._parse = parse
        self._clock = clock
        self.confident = confident
        self.timeout_s = timeout_s
        self.stats = SpeculationStats()
        self._text: str | None = None
        """The words of the latest parse started."""
        self._started = 0.0
        self._result: Parsed | None = None
        self._failed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> bool:
        return self._task is not None and not self._task.done()

    def judge(self, partial: str, expecting: str) -> bool | None:
        """The completeness hook: ``True`` (a confident intent: end after the short silence), ``False`` (the
        fixed rule: not confident, not known yet, too slow or failed). Starts a parse for new words."""
        if partial != self._text:
            if self.in_flight:
                self.stats.busy += 1
                return False
            self._start(partial)
            return False
        if self._result is not None:
            return self._is_confident(self._result)
        if not self._failed and self._clock() - self._started >= self.timeout_s and self.in_flight:
            self._failed = True  # the clock says too late, whatever the socket says: the fixed rule
            self.stats.timeouts += 1
        return False

    def committable(self, text: str) -> bool:
        """Whether a turn ending now with ``text`` may be sent at once: those very words were parsed, with a
        confident intent. Counted as committed when so."""
        ok = text == self._text and self._result is not None and self._is_confident(self._result)
        if ok:
            self.stats.committed += 1
        return ok

    def final(self, committed: str, final: str) -> None:
        """The recogniser's final result of a turn committed at the decision (for the record)."""
        if final != committed:
            self.stats.final_differs += 1

    def forget(self) -> None:
        """A turn was sent: what was parsed belongs to it (the next question may shield the same words
        differently), so the next utterance starts afresh. A parse in flight finishes unused."""
        self._text = None
        self._result = None
        self._failed = False

    def close(self) -> None:
        """The call ended: drop a parse in flight."""
        if self._task is not None:
            self._task.cancel()

    def _is_confident(self, parsed: Parsed) -> bool:
        return bool(parsed.intent) and parsed.intent != NOT_UNDERSTOOD and parsed.confidence >= self.confident

    def _start(self, text: str) -> None:
        self._text = text
        self._started = self._clock()
        self._result = None
        self._failed = False
        self.stats.parses += 1
        self._task = asyncio.get_running_loop().create_task(self._run(text), name="speculative-parse")

    async def _run(self, text: str) -> None:
        try:
            parsed = await asyncio.wait_for(self._parse(text), self.timeout_s)
        except asyncio.TimeoutError:
            if text == self._text and not self._failed:
                self._failed = True
                self.stats.timeouts += 1
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the fixed rule applies; the turn itself is unaffected
            log.debug("speculative parse failed (%s)", type(exc).__name__)
            if text == self._text:
                self._failed = True
                self.stats.failures += 1
            return
        if text == self._text and not self._failed:
            self._result = parsed
            if self._is_confident(parsed):
                self.stats.confident += 1

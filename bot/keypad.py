"""The keypad: a menu key, or digits typed as an answer (a PIN, an order number).

Pure state on a clock (tested with a fake one). Rules:

- ``#`` sends what was typed at once;
- a lone menu key (``prompts.yml`` ``keypad:``) followed by ``single_key_s`` of quiet is a menu choice, sent
  to the assistant as the intent it names (``/ask_balance``);
- any other digits followed by ``sequence_s`` of quiet are sent as typed;
- at most ``max_keys`` are kept: a flood of key presses cannot grow without bound.
"""

from __future__ import annotations

from collections.abc import Mapping

from telephony.frames import Transcript

SINGLE_KEY_S = 1.5
"""A lone key with nothing after it for this long is a menu choice."""
SEQUENCE_S = 3.0
"""Digits followed by this much quiet are sent as typed (no '#' needed)."""
MAX_KEYS = 32
"""Keys kept before '#' or the pause; more are dropped (no answer the bot asks for is longer)."""


class Keypad:
    """Collects one call's key presses into caller turns."""

    def __init__(
        self,
        menu: Mapping[str, str],
        *,
        single_key_s: float = SINGLE_KEY_S,
        sequence_s: float = SEQUENCE_S,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._menu = menu
        self._single_key_s = single_key_s
        self._sequence_s = sequence_s
        self._max_keys = max_keys
        self._keys: list[str] = []
        self._last_key_at = 0.0
        self.dropped = 0
        """Keys refused because ``max_keys`` were already waiting."""

    def use_menu(self, menu: Mapping[str, str]) -> Mapping[str, str]:
        """Answer single keys with ``menu`` from now on (a yes/no question: 1 and 2; a number: none);
        returns the menu it replaces."""
        previous, self._menu = self._menu, menu
        return previous

    @property
    def pending(self) -> bool:
        """Keys are waiting to be sent."""
        return bool(self._keys)

    def press(self, digit: str, now: float) -> Transcript | None:
        """One key at time ``now``; returns the turn ``#`` completes, if any."""
        if digit == "#":
            return self._flush()
        if len(self._keys) >= self._max_keys:
            self.dropped += 1
            return None
        self._keys.append(digit)
        self._last_key_at = now
        return None

    def tick(self, now: float) -> Transcript | None:
        """Timer: the turn a pause completes, if any."""
        if not self._keys:
            return None
        single = len(self._keys) == 1 and self._keys[0] in self._menu
        if now - self._last_key_at >= (self._single_key_s if single else self._sequence_s):
            return self._flush()
        return None

    def _flush(self) -> Transcript | None:
        keys, self._keys = "".join(self._keys), []
        if not keys:
            return None
        intent = self._menu.get(keys) if len(keys) == 1 else None
        return Transcript(f"/{intent}" if intent is not None else keys, source="dtmf")

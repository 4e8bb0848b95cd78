"""The keypad rules on a fake clock: menu key after a pause, typed digits after '#' or a longer pause, and a
bound on what a key flood can pile up."""

from __future__ import annotations

from bot.keypad import MAX_KEYS, SEQUENCE_S, SINGLE_KEY_S, Keypad
from telephony.frames import Transcript

MENU = {"1": "ask_balance", "0": "request_agent"}


def test_a_lone_menu_key_after_a_pause_is_the_menu_intent() -> None:
    pad = Keypad(MENU)
    assert pad.press("1", 10.0) is None
    assert pad.tick(10.0 + SINGLE_KEY_S - 0.01) is None
    assert pad.tick(10.0 + SINGLE_KEY_S) == Transcript("/ask_balance", source="dtmf")
    assert not pad.pending


def test_digits_go_as_typed_on_hash_or_after_the_longer_pause() -> None:
    pad = Keypad(MENU)
    for t, key in enumerate("4719"):
        assert pad.press(key, float(t)) is None
    assert pad.tick(3.0 + SINGLE_KEY_S) is None  # more than one key: not a menu choice
    assert pad.press("#", 4.0) == Transcript("4719", source="dtmf")
    pad.press("9", 5.0)  # a key that is not in the menu waits the longer pause
    assert pad.tick(5.0 + SINGLE_KEY_S) is None
    assert pad.tick(5.0 + SEQUENCE_S) == Transcript("9", source="dtmf")
    assert pad.press("#", 20.0) is None  # '#' alone sends nothing


def test_a_key_flood_is_capped() -> None:
    pad = Keypad(MENU)
    for n in range(10_000):
        pad.press("5", n * 0.001)
    turn = pad.press("#", 11.0)
    assert turn is not None and turn.text == "5" * MAX_KEYS
    assert pad.dropped == 10_000 - MAX_KEYS

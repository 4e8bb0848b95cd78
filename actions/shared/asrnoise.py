"""Recogniser noise: what a caller's words look like after Vosk, made from clean text, deterministically.

:func:`noisy` turns one utterance into what the speech recogniser might have handed over: lower case, no
punctuation (``what's`` becomes ``whats``), digits spoken as words, homophones swapped (``for``/``four``,
``to``/``two``/``too``, ``no``/``know``), short words dropped, fillers (``um``, ``uh``, ``like``) and a
stutter put in. The same text and seed always give the same result (the generator is seeded from both),
and the result always differs from the clean text: with no other change a filler is put in front.

Two uses, with different seeds: the NLU checker measures how much understanding drops from clean to noisy
held-out text (:mod:`bot.tools.nlucheck.heldout`, seed :data:`DEFAULT_SEED`, on the held-out sets only), and
the intent classifier learns from noisy copies of the training examples (:mod:`bot.rasa.linear_intent`,
seeds from :data:`TRAINING_SEED` up, on the training examples only). Both see this one model of the
recogniser's errors, so the noisy held-out figure measures robustness to it, not to every error Vosk makes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

DEFAULT_SEED = 12
"""The seed of the noisy held-out set the checker reports on."""
TRAINING_SEED = 100
"""The first seed of the noisy copies of the training examples (one seed per copy, never DEFAULT_SEED)."""

HOMOPHONES: dict[str, tuple[str, ...]] = {
    "for": ("four",),
    "four": ("for",),
    "to": ("two", "too"),
    "too": ("to", "two"),
    "two": ("to", "too"),
    "no": ("know",),
    "know": ("no",),
    "there": ("their",),
    "their": ("there",),
    "your": ("youre",),
    "youre": ("your",),
    "right": ("write",),
    "by": ("buy", "bye"),
    "buy": ("by",),
    "our": ("hour", "are"),
    "hour": ("our",),
    "new": ("knew",),
    "see": ("sea",),
    "wait": ("weight",),
    "where": ("wear",),
    "would": ("wood",),
    "its": ("it",),
    "whats": ("what",),
    "im": ("i",),
    "weak": ("week",),
    "week": ("weak",),
    "mail": ("male",),
    "order": ("other",),
    "check": ("cheque",),
    "fault": ("fold",),
    "bill": ("bell",),
}
"""Words the recogniser confuses, each with what it may write instead."""

FILLERS = ("um", "uh", "er", "erm", "like", "you know", "so", "well")
_DROPPABLE = frozenset("a an the is it i to of and my me on in at do".split())
"""Short unstressed words the recogniser tends to lose."""

_UNITS = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = frozenset(_UNITS + _TEENS + _TENS[2:] + ["oh", "hundred", "double", "triple"])
_NUMBER = re.compile(r"\d+")
_NOT_WORD = re.compile(r"[^a-z0-9\s]")

HOMOPHONE_RATE = 0.35
DROP_RATE = 0.15
FILLER_RATE = 0.25
STUTTER_RATE = 0.08


def number_words(digits: str) -> str:
    """``"42"`` -> ``"forty two"``; long strings (account numbers, PINs) digit by digit, as said."""
    n = int(digits)
    if len(digits) > 4 or (digits.startswith("0") and len(digits) > 1):
        return " ".join(_UNITS[int(d)] for d in digits)
    if n < 10:
        return _UNITS[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens] + (f" {_UNITS[unit]}" if unit else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_UNITS[hundreds]} hundred" + (f" and {number_words(str(rest))}" if rest else "")
    high, low = divmod(n, 100)  # years and the like: "2024" -> "twenty twenty four"
    if low == 0:
        return f"{number_words(str(high))} hundred"
    return f"{number_words(str(high))} {number_words(str(low)) if low >= 10 else 'oh ' + _UNITS[low]}"


def plain(text: str) -> str:
    """Lower case, digits as words, no punctuation (apostrophes simply go: ``don't`` -> ``dont``)."""
    unquoted = text.lower().replace("'", "").replace("\u2019", "")
    lowered = _NUMBER.sub(lambda m: f" {number_words(m.group())} ", unquoted)
    return " ".join(_NOT_WORD.sub(" ", lowered).split())


def noisy(text: str, seed: int = DEFAULT_SEED) -> str:
    """``text`` as the recogniser might have heard it; the same ``text`` and ``seed`` give the same result."""
    rng = random.Random(f"{seed}\x00{text}")
    clean = plain(text)
    words = clean.split()
    out: list[str] = []
    for i, word in enumerate(words):
        if word in _DROPPABLE and len(words) > 2 and rng.random() < DROP_RATE:
            continue
        in_number = word in _NUMBER_WORDS and any(
            w in _NUMBER_WORDS for w in words[max(0, i - 1) : i] + words[i + 1 : i + 2]
        )  # a digit string keeps its digits: the keypad-style parser has its own tests
        if word in HOMOPHONES and not in_number and rng.random() < HOMOPHONE_RATE:
            word = rng.choice(HOMOPHONES[word])
        if rng.random() < FILLER_RATE / max(1, len(words)) * 2 and i:
            out.append(rng.choice(FILLERS))
        if rng.random() < STUTTER_RATE:
            out.append(word.split()[0])
        out.append(word)
    result = " ".join(out) or clean
    if result == text:
        result = f"{rng.choice(FILLERS)} {result}"
    return result


def noisy_all(texts: Iterable[str], seed: int = DEFAULT_SEED) -> list[str]:
    """:func:`noisy` of each text, with the same seed."""
    return [noisy(t, seed) for t in texts]

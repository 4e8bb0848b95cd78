"""The gateway's own phrases and keypad menu, from ``nlu-data/prompts.yml`` (editors own the wording)."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from actions.shared.numerals import number_words
from actions.shared.yamlfile import YamlFileError, read_yaml

REQUIRED = ("technical", "handoff", "holding", "no_input", "no_input_goodbye", "too_long", "keypad_menu")
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class PromptsError(ValueError):
    """``prompts.yml`` is unreadable or incomplete; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class DurationWords:
    """How a length of time is said, in whole minutes: the whisper's ``waited_*`` lines and the wait's
    duration lines (``prompts.yml``); ``{n}`` is a number in words."""

    minute: str
    minutes: str
    hour: str
    hours: str
    hour_and_a_half: str
    hours_and_a_half: str

    def say(self, minutes: int) -> str:
        """``minutes`` (from 1) as a person says it: minutes below an hour ("one minute", "fifty nine
        minutes"); then hours, to the nearest half hour below three hours ("an hour", "an hour and a half",
        "two and a half hours") and to the nearest hour from three on ("three hours", "ten hours"). Halfway
        rounds up (75 minutes: an hour and a half; 165: three hours)."""
        if minutes < 60:
            return self.minute if minutes == 1 else self.minutes.format(n=number_words(minutes))
        if minutes < 180:
            hours, half = divmod((minutes + 15) // 30, 2)
        else:
            hours, half = (minutes + 30) // 60, 0
        if half:
            return self.hour_and_a_half if hours == 1 else self.hours_and_a_half.format(n=number_words(hours))
        return self.hour if hours == 1 else self.hours.format(n=number_words(hours))


WHISPER_FIELDS = {
    "sentence": {"caller", "skill", "topic", "waited"},
    "callback": {"caller", "skill", "topic", "waited"},
    "verified": {"name"},
    "verified_no_name": set(),
    "unverified": set(),
    "waited_seconds": set(),
    "waited_minute": set(),
    "waited_minutes": {"n"},
    "waited_hour": set(),
    "waited_hours": {"n"},
    "waited_hour_and_a_half": set(),
    "waited_hours_and_a_half": {"n"},
    "topic_unknown": set(),
}
"""The whisper's lines and the placeholders each must use (no others)."""


@dataclass(frozen=True, slots=True)
class WhisperWords:
    """The words of the agent's whisper (``prompts.yml`` ``whisper:``; see ``bot/whisper.py``)."""

    sentence: str
    callback: str
    """The brief of a callback (``{waited}``: since the caller asked for it)."""
    verified: str
    verified_no_name: str
    unverified: str
    waited_seconds: str
    waited: DurationWords
    """``waited_minute`` .. ``waited_hours_and_a_half``: a minute on."""
    topic_unknown: str
    skills: Mapping[str, str]
    topics: Mapping[str, str]
    reasons: Mapping[str, str]

    @classmethod
    def parse(cls, path: Path, data: Any) -> WhisperWords:
        if not isinstance(data, dict):
            raise PromptsError(f"{path}: needs a 'whisper:' mapping (the agent's brief)")
        lines: dict[str, str] = {}
        for key, wanted in WHISPER_FIELDS.items():
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise PromptsError(f"{path}: whisper.{key} is missing or empty")
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
            if used != wanted:
                need = ", ".join("{" + n + "}" for n in sorted(wanted)) or "no placeholders"
                raise PromptsError(f"{path}: whisper.{key} must use {need}")
            lines[key] = value.strip()
        tables: dict[str, dict[str, str]] = {}
        for key in ("skills", "topics", "reasons"):
            table = data.get(key) or {}
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise PromptsError(f"{path}: whisper.{key} must map names to words")
            tables[key] = {str(k): v.strip() for k, v in table.items()}
        waited = DurationWords(**{f.name: lines.pop(f"waited_{f.name}") for f in fields(DurationWords)})
        return cls(
            **lines,
            waited=waited,
            skills=tables["skills"],
            topics=tables["topics"],
            reasons=tables["reasons"],
        )


WAIT_FIELDS = {
    "busy": {"team", "wait"},
    "soon": {"team"},
    "nobody": {"team"},
    "under_a_minute": set(),
    "one_minute": set(),
    "minutes": {"n"},
    "one_hour": set(),
    "hours": {"n"},
    "hour_and_a_half": set(),
    "hours_and_a_half": {"n"},
}


@dataclass(frozen=True, slots=True)
class WaitWords:
    """The editors' words for the wait (``prompts.yml`` ``wait:``)."""

    busy: str
    soon: str
    nobody: str
    under_a_minute: str
    duration: DurationWords
    """``one_minute`` .. ``hours_and_a_half``: a minute on."""
    teams: Mapping[str, str]
    soon_s: float = 60.0
    """Below this, the short sentence (``soon``) is said instead of a figure."""

    @classmethod
    def parse(cls, path: Path, data: Any) -> WaitWords:
        if not isinstance(data, dict):
            raise PromptsError(f"{path}: needs a 'wait:' mapping (what callers hear about the wait)")
        lines: dict[str, str] = {}
        for key, wanted in WAIT_FIELDS.items():
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise PromptsError(f"{path}: wait.{key} is missing or empty")
            used = {n for _, n, _, _ in string.Formatter().parse(value) if n is not None}
            if used != wanted:
                need = ", ".join("{" + n + "}" for n in sorted(wanted)) or "no placeholders"
                raise PromptsError(f"{path}: wait.{key} must use {need}")
            lines[key] = value.strip()
        teams = data.get("teams") or {}
        if not isinstance(teams, dict) or not all(isinstance(v, str) for v in teams.values()):
            raise PromptsError(f"{path}: wait.teams must map skills to words")
        return cls(
            busy=lines["busy"],
            soon=lines["soon"],
            nobody=lines["nobody"],
            under_a_minute=lines["under_a_minute"],
            duration=DurationWords(
                minute=lines["one_minute"],
                minutes=lines["minutes"],
                hour=lines["one_hour"],
                hours=lines["hours"],
                hour_and_a_half=lines["hour_and_a_half"],
                hours_and_a_half=lines["hours_and_a_half"],
            ),
            teams={str(k): v.strip() for k, v in teams.items()},
        )


CALLBACK_FIELDS = {
    "offer": set(),
    "caller_id": {"digits"},
    "ask_number": set(),
    "confirm_number": {"digits"},
    "confirmed": {"digits"},
    "window_offer": set(),
    "ask_window": set(),
    "window_confirm": {"start", "end"},
    "confirmed_window": {"digits", "start", "end"},
    "declined": set(),
    "not_understood": set(),
    "closed": {"hours", "opens"},
    "voicemail_offer": set(),
    "voicemail_go": set(),
    "opening_offer": set(),
    "scheduled": {"digits", "opens"},
    "carry_on": set(),
    "goodbye": set(),
    "oncall": set(),
}
"""The callback and after-hours lines (``prompts.yml`` ``callback:``) and the placeholders each must use."""


@dataclass(frozen=True, slots=True)
class CallbackWords:
    """The editors' words for callbacks and after hours (``prompts.yml`` ``callback:``)."""

    lines: Mapping[str, str]

    def fixed(self) -> list[str]:
        """The lines without placeholders (synthesised once and cached, like the other phrases)."""
        return [text for text in self.lines.values() if "{" not in text]

    def __getitem__(self, key: str) -> str:
        return self.lines[key]

    @classmethod
    def parse(cls, path: Path, data: Any) -> CallbackWords:
        if not isinstance(data, dict):
            raise PromptsError(f"{path}: needs a 'callback:' mapping (callbacks and after hours)")
        lines: dict[str, str] = {}
        for key, wanted in CALLBACK_FIELDS.items():
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                raise PromptsError(f"{path}: callback.{key} is missing or empty")
            used = {n for _, n, _, _ in string.Formatter().parse(value) if n is not None}
            if used != wanted:
                need = ", ".join("{" + n + "}" for n in sorted(wanted)) or "no placeholders"
                raise PromptsError(f"{path}: callback.{key} must use {need}")
            lines[key] = value.strip()
        return cls(lines)


GREETING_KINDS = ("unknown", "new", "returning", "existing")
"""The greetings by who is calling (``prompts.yml`` ``greeting:``); ``unknown``: withheld number, no store."""


def _greetings(path: Path, data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise PromptsError(f"{path}: needs a 'greeting:' mapping (the first words of a call, by caller)")
    greetings: dict[str, str] = {}
    for kind in GREETING_KINDS:
        value = data.get(kind)
        if not isinstance(value, str) or not value.strip():
            raise PromptsError(f"{path}: greeting.{kind} is missing or empty")
        if "{" in value:
            raise PromptsError(f"{path}: greeting.{kind} takes no placeholders")
        greetings[kind] = value.strip()
    return greetings


@dataclass(frozen=True, slots=True)
class Prompts:
    """Fixed phrases by key, the greetings, keypad digit to intent, and the whisper's words."""

    phrases: Mapping[str, str]
    keypad: Mapping[str, str]
    whisper: WhisperWords
    wait: WaitWords
    callback: CallbackWords
    greeting: Mapping[str, str]
    """By caller kind (:data:`GREETING_KINDS`)."""

    def greeting_for(self, kind: str | None) -> tuple[str, str]:
        """The greeting's key (``unknown`` for a kind without one) and words."""
        key = kind if kind is not None and kind in self.greeting else "unknown"
        return key, self.greeting[key]

    def __getitem__(self, key: str) -> str:
        return self.phrases[key]

    @classmethod
    def load(cls, path: Path) -> Prompts:
        """Read and check the file."""
        try:
            data: Any = read_yaml(path)
        except OSError as exc:
            raise PromptsError(f"{path}: cannot read ({exc.strerror})") from exc
        except YamlFileError as exc:
            raise PromptsError(str(exc)) from exc
        if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
            raise PromptsError(f"{path}: needs a 'prompts:' mapping")
        phrases = data["prompts"]
        missing = [k for k in REQUIRED if not isinstance(phrases.get(k), str) or not phrases[k].strip()]
        if missing:
            raise PromptsError(f"{path}: prompts missing or empty: {', '.join(missing)}")
        keypad = data.get("keypad") or {}
        if not isinstance(keypad, dict):
            raise PromptsError(f"{path}: 'keypad:' must map keys to intents")
        menu: dict[str, str] = {}
        for key, intent in keypad.items():
            k = str(key)
            if k not in set("0123456789*") or not isinstance(intent, str) or not INTENT_NAME.match(intent):
                raise PromptsError(f"{path}: keypad entry {k!r}: {intent!r} is not a key and an intent name")
            menu[k] = intent
        whisper = WhisperWords.parse(path, data.get("whisper"))
        wait = WaitWords.parse(path, data.get("wait"))
        callback = CallbackWords.parse(path, data.get("callback"))
        greeting = _greetings(path, data.get("greeting"))
        return cls({k: str(v).strip() for k, v in phrases.items()}, menu, whisper, wait, callback, greeting)


def domain_fixed_texts(path: Path) -> list[str]:
    """The assistant's fixed words: every ``text`` of the domain's ``utter_*`` responses without a slot
    (``{...}``), in file order, each once; what the gateway renders ahead of the first call. A missing
    domain has none."""
    try:
        data: Any = read_yaml(path)
    except FileNotFoundError:
        return []
    except YamlFileError as exc:
        raise PromptsError(str(exc)) from exc
    responses = data.get("responses") if isinstance(data, dict) else None
    if not isinstance(responses, dict):
        return []
    found: dict[str, None] = {}
    for name, variants in responses.items():
        if not str(name).startswith("utter_") or not isinstance(variants, list):
            continue
        for variant in variants:
            text = variant.get("text") if isinstance(variant, dict) else None
            if isinstance(text, str) and text.strip() and "{" not in text:
                found[text.strip()] = None
    return list(found)

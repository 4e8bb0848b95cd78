"""The gateway's own phrases and keypad menu, from ``nlu-data/prompts.yml`` (editors own the wording)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actions.shared.yamlfile import YamlFileError, read_yaml

REQUIRED = ("technical", "handoff", "no_input", "no_input_goodbye", "too_long", "keypad_menu")
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class PromptsError(ValueError):
    """``prompts.yml`` is unreadable or incomplete; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Prompts:
    """Fixed phrases by key, and keypad digit to intent."""

    phrases: Mapping[str, str]
    keypad: Mapping[str, str]

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
        return cls({k: str(v).strip() for k, v in phrases.items()}, menu)

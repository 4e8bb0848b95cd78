"""YAML files people edit by hand: a mistake is reported as ``file:line: problem``, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    """The file is not valid YAML; the message names the file and, when known, the line."""


def read_yaml(path: Path) -> Any:
    """Parse ``path`` safely. ``FileNotFoundError`` passes through (callers decide what missing means)."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise YamlFileError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc

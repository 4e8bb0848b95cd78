"""Rasa's own YAML files (domain, training data, config) read the way Rasa reads them, with line numbers.

Rasa parses with ruamel.yaml, YAML 1.2: a duplicate key is an error, and ``yes`` or ``on`` stay words. The
tools that stand before Rasa (the training pre-check, ``nlucheck``) must accept exactly what Rasa accepts
and point at the line that is wrong, so Rasa's files go through :func:`check` or :func:`load` here, and only
here. The files
the bot reads itself (``prompts.yml``, ``faq.yml``, the lexicon) go through
:func:`actions.shared.yamlfile.read_yaml` (PyYAML) instead, as the bot reads them.

:func:`load` returns ruamel's round-trip nodes, which remember where they came from: :func:`line_of`,
:func:`value_line` and :func:`is_block` read that back. Nothing else in the project imports ruamel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString


class RasaYamlError(ValueError):
    """A file Rasa could not read: not UTF-8, or not YAML. Says where, when the parser knows."""

    def __init__(self, line: int | None, column: int | None, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        """1-based, or ``None`` when the parser did not say."""
        self.column = column
        """1-based, or ``None``."""
        self.problem = problem


class NotUtf8(RasaYamlError):
    """The file's bytes are not UTF-8 text (the line is where the first bad byte is)."""


def check(path: Path) -> None:
    """Parse ``path`` exactly as Rasa does (ruamel's safe loader); :class:`RasaYamlError` if it cannot.

    :class:`NotUtf8` if it is not even text. ``OSError`` (a missing file, say) passes through: what a
    missing file means is the caller's business.
    """
    _parse(_text(path), "safe")


def load(path: Path) -> Any:
    """:func:`check` ``path``, then parse it again keeping line numbers (ruamel's round-trip loader).

    The round-trip loader alone would accept what Rasa refuses (a ``!!python/object`` tag, say), hence both.
    """
    text = _text(path)
    _parse(text, "safe")
    return _parse(text, "rt")


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise NotUtf8(bad_line, None, "not UTF-8 text (save the file as UTF-8)") from exc


def _parse(text: str, typ: str) -> Any:
    try:
        return YAML(typ=typ, pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "invalid YAML"
        if mark is None:
            raise RasaYamlError(None, None, what) from exc
        raise RasaYamlError(mark.line + 1, mark.column + 1, what) from exc
    except YAMLError as exc:
        raise RasaYamlError(None, None, str(exc)) from exc


def line_of(node: Any, key: Any = None, index: int | None = None) -> int | None:
    """1-based line of a loaded node, of one of its keys, or of one of its items (``None`` if unknown)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            return int(lc.key(key)[0]) + 1
        if index is not None:
            return int(lc.item(index)[0]) + 1
        return int(lc.line) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def value_line(node: Any, key: Any) -> int | None:
    """1-based line where the value of ``node[key]`` starts (for a ``|`` block: the line of the ``|``)."""
    try:
        return int(node.lc.value(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def is_block(value: Any) -> bool:
    """Whether a loaded string was written as a ``|`` block, so its n-th line is the n-th file line below."""
    return isinstance(value, LiteralScalarString)

"""Fault language: whether a caller's words describe something not working, and how badly.

Used by the support line (how bad the outage is) and by every task form (only a described fault switches a
task in progress to the support line: the classifier alone is not trusted to, as short answers like "purple"
or "just the one" can come out as a fault report with full confidence).
"""

from __future__ import annotations

import re

_TOTAL = re.compile(
    r"\b(at all|nothing works|nothing is working|completely|totally|dead|won'?t (turn|switch) on|"
    r"doesn'?t (turn|switch) on|no (service|signal|power|connection)|stopped working|fully down|entirely|"
    r"(is|are|s) down|outage)\b"
)
_PARTIAL = re.compile(
    r"\b(partly|partially|sometimes|some of|some things|intermittent|on and off|keeps? (dropping|cutting)|"
    r"drops?|slow|only|half|crackl\w*|now and then|occasionally|part of)\b"
)
_FAULT = re.compile(
    r"\b(not working|isn'?t working|doesn'?t work|don'?t work|broken|broke|fault\w*|stopped|down|"
    r"crash\w*|won'?t|can'?t|cannot|dropping|drops?|no signal|problem with|issue with|error|"
    # what callers say instead: lights, noises, screens
    r"blinking|flashing|buzzing|beeping|"
    r"not (charging|connecting|loading)|keeps? (turning|switching|freezing|restarting)|frozen|freez\w*|"
    r"cracked|smashed|cuts? out|cutting out|no sound|no dial tone|gone (black|dead|blank|off)|blank)\b"
)
SERVICE_FAILED = re.compile(
    r"\b(no-?show|never (came|showed|turned up|arrived)|didn'?t (turn up|show up|come|arrive))\b"
)
"""A service that did not happen ("your technician was a no-show"): the support line, though no device is
at fault (so no "not working at all, or only partly?")."""


def outage_kind(text: str) -> str | None:
    """ "total", "partial", "fault" (an outage, extent unknown) or ``None`` (a question, not a fault)."""
    lowered = text.lower()
    if _PARTIAL.search(lowered):
        return "partial"
    if _TOTAL.search(lowered):
        return "total"
    if _FAULT.search(lowered):
        return "fault"
    return None


_GENERIC = re.compile(
    r"\b(can'?t|cannot|won'?t)\b(?! (connect|charge|load|work|hear|call|dial|log|get online|get a signal|"
    r"turn|switch|play|pair|sync|print|send|receive))"
)


def is_fault(text: str) -> bool:
    """Whether the words describe something not working ("it keeps cutting out", "the box is blinking", "the
    technician never turned up").

    Stricter than :func:`outage_kind` on a caller already reporting a fault: "can't" or
    "won't" is a fault only with what a device does ("it can't connect", not "i can't remember what i
    ordered")."""
    if SERVICE_FAILED.search(text.lower()):
        return True
    kind = outage_kind(text)
    if kind in ("total", "partial"):
        return True
    return kind == "fault" and outage_kind(_GENERIC.sub(" ", text.lower())) is not None

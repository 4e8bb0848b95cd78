"""The handoff request: the one place its payload is built, for the actions and for the Rasa channel.

What the gateway receives, as one reply item after the words the caller hears::

    {"custom": {"handoff": {"reason": R, "skill": S, "context": {...}}}}

``R`` is one of :data:`HANDOFF_REASONS` and ``S`` a :class:`~telephony.callstate.Skill`, both from the
call-state vocabulary the gateway, FastAGI and call control share. ``context`` is what an agent may see
(never a PIN or a date of birth); the actions fill it from the conversation (``actions/handoff.py``), the
channel with the call id only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actions.shared.masking import mask_text
from telephony.callstate import Reason, Skill

__all__ = ["HANDOFF_LINES", "HANDOFF_REASONS", "Reason", "Skill", "handoff_payload", "handoff_reason"]
"""(:class:`Reason` and :class:`Skill` are the call-state vocabulary's, re-exported for the Rasa channel.)"""

HANDOFF_REASONS = (
    Reason.REQUESTED,
    Reason.NO_MATCH,
    Reason.VERIFICATION_FAILED,
    Reason.VERIFICATION_LOCKED,
    Reason.NOT_FOUND,
    Reason.TECHNICAL,
)
"""Why the dialogue hands a call to a person: the caller asked (or accepted our offer), not understood
twice in a row, verification failed, the customer is locked out of verification (too many failed checks
across calls), the number is no customer's, or something broke."""

HANDOFF_LINES: Mapping[Reason, str] = {
    Reason.REQUESTED: "utter_handoff_requested",
    Reason.NO_MATCH: "utter_handoff_no_match",
    Reason.VERIFICATION_FAILED: "utter_handoff_verification_failed",
    Reason.VERIFICATION_LOCKED: "utter_handoff_verification_locked",
    Reason.NOT_FOUND: "utter_handoff_not_found",
    Reason.TECHNICAL: "utter_handoff_technical",
}
"""The response (``nlu-data/domain.yml``) the caller hears before the handoff, by reason."""


def handoff_reason(raw: object) -> Reason:
    """``raw`` (a slot value, a string, a :class:`Reason`) as a handoff reason; anything else is
    :attr:`~telephony.callstate.Reason.TECHNICAL`."""
    reason = Reason.parse(raw, Reason.TECHNICAL)
    return reason if reason in HANDOFF_REASONS else Reason.TECHNICAL


def handoff_payload(reason: Reason, skill: Skill, context: Mapping[str, Any]) -> dict[str, Any]:
    """``{"reason", "skill", "context"}`` with plain strings, ready for JSON. What the caller said that the
    context carries (``slots``: the problem in their words, a call-back number) is masked once more
    (:mod:`actions.shared.masking`), whatever the words went through before."""
    kept = dict(context)
    if isinstance(kept.get("slots"), Mapping):
        kept["slots"] = {
            name: mask_text(value, bare_digits_are_pin=False) if isinstance(value, str) else value
            for name, value in kept["slots"].items()
        }
    return {"reason": handoff_reason(reason).value, "skill": skill.value, "context": kept}

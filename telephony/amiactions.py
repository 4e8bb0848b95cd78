"""What AMI actions return and raise: typed results, the error tree, checks on the values sent to Asterisk.

Error tree (every class here derives from :class:`AmiError`)::

    AmiError
    ├── AmiNotConnected       no connection within the action's timeout: nothing was sent, a retry is safe
    ├── AmiNoAnswer           the action was sent, no answer came: its outcome is unknown
    │   ├── AmiTimeout            ... within the timeout, on a connection that stayed up
    │   ├── AmiConnectionLost     ... the connection dropped first
    │   └── AmiUnconfirmed        ... an earlier call with the same intent key; not sent again
    ├── AmiActionError        Asterisk answered ``Response: Error`` (``message`` is its ``Message``); final,
    │   └── AmiPermissionDenied   never retried. ``Permission denied``: the manager user lacks the class
    ├── AmiLoginFailed        ``Login`` refused (wrong user/secret, ``permit``): the connection retries
    │                         with back-off and logs it as an error every time
    ├── AmiIntentConflict     one intent key used for two different actions (a bug in the caller)
    └── AmiFieldError         (telephony.amievents) a message lacks a required field: logged, skipped

Which failures are retried is the AMI client's business (:mod:`telephony.ami`); this module only names them.
Values sent to Asterisk are checked here (:func:`header_value`): a carriage return or line feed would end the
header and let text inject AMI headers or whole actions, so it is refused with ``ValueError`` before anything
is sent, as is ``|`` in a ``QueueLog`` field (it separates ``queue_log`` columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from telephony.amievents import MemberState, QueueEntry, QueueParams


class AmiError(Exception):
    """Base of every AMI failure."""


class AmiNotConnected(AmiError):
    """No usable AMI connection within the timeout; the action was not sent."""


class AmiNoAnswer(AmiError):
    """The action was sent and no answer came: Asterisk may or may not have carried it out."""

    def __init__(self, action: str, detail: str, intent: str | None = None) -> None:
        super().__init__(f"AMI {action}: {detail}" + (f" (intent {intent})" if intent else ""))
        self.action = action
        self.intent = intent


class AmiTimeout(AmiNoAnswer):
    """No answer within the action's timeout; the connection stayed up."""


class AmiConnectionLost(AmiNoAnswer):
    """The connection dropped after the action was sent and before its answer."""


class AmiUnconfirmed(AmiNoAnswer):
    """An earlier call with this intent key sent the action and never got its answer; it is not sent again
    (``QueueLog`` and ``Originate``, whose effect cannot be read back over AMI)."""


class AmiActionError(AmiError):
    """Asterisk refused the action (``Response: Error``)."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action} refused: {message}")
        self.action = action
        self.message = message
        """Asterisk's ``Message``, e.g. ``Interface not found``."""


class AmiPermissionDenied(AmiActionError):
    """``Permission denied``: the manager user's ``write`` classes do not cover the action."""


class AmiLoginFailed(AmiError):
    """The manager refused the login."""


class AmiIntentConflict(AmiError):
    """An intent key was reused for a different action or different values."""


def action_error(action: str, message: str) -> AmiActionError:
    """The exception for a ``Response: Error`` with Asterisk's ``message``."""
    if message == "Permission denied":
        return AmiPermissionDenied(action, message)
    return AmiActionError(action, message)


class Delivery(str, Enum):
    """How a state-changing action's result was obtained."""

    ANSWERED = "answered"
    """Sent by this call and answered by Asterisk."""
    REPLAYED = "replayed"
    """The intent was answered before: nothing sent, the earlier answer returned."""
    VERIFIED = "verified"
    """The answer was lost with the connection; Asterisk's state, read back, shows the intent carried out, so
    it was not sent again."""


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """Asterisk carried out a state-changing action."""

    action: str
    intent: str
    """The caller's intent key."""
    message: str
    """Asterisk's ``Message`` (``Interface paused successfully``); empty when verified or replayed from
    state."""
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class QueueStatusSnapshot:
    """The answer to ``QueueStatus``: queues, their members and their waiting callers, at one moment."""

    params: tuple[QueueParams, ...]
    members: tuple[MemberState, ...]
    entries: tuple[QueueEntry, ...]

    def queue_names(self) -> tuple[str, ...]:
        """Every queue named in the answer, in Asterisk's order."""
        names: dict[str, None] = {}
        for queue in [p.queue for p in self.params] + [m.queue for m in self.members]:
            names.setdefault(queue, None)
        for entry in self.entries:
            names.setdefault(entry.queue, None)
        return tuple(names)

    def members_of(self, queue: str) -> tuple[MemberState, ...]:
        return tuple(m for m in self.members if m.queue == queue)

    def entries_of(self, queue: str) -> tuple[QueueEntry, ...]:
        return tuple(e for e in self.entries if e.queue == queue)

    def member(self, queue: str | None, interface: str) -> tuple[MemberState, ...]:
        """The memberships of ``interface`` (in ``queue``, or in every queue when ``None``)."""
        return tuple(
            m for m in self.members if m.interface == interface and (queue is None or m.queue == queue)
        )


_FORBIDDEN = ("\r", "\n", "\x00")


def header_value(name: str, value: object, *, queue_log: bool = False) -> str:
    """``value`` as an AMI header value; ``ValueError`` if it could break the message (or a ``queue_log``
    row, with ``queue_log``). The value itself is not echoed: it may be caller text."""
    text = value if isinstance(value, str) else str(value)
    if any(ch in text for ch in _FORBIDDEN):
        raise ValueError(f"AMI header {name}: line breaks and NUL are not allowed")
    if queue_log and "|" in text:
        raise ValueError(f"AMI QueueLog {name}: '|' separates queue_log columns and is not allowed")
    if len(text) > 1024:
        raise ValueError(f"AMI header {name}: longer than 1024 characters")
    return text


def variable_header(name: str, value: str) -> str:
    """One ``Variable: NAME=value`` of Originate; names are ``[A-Za-z_][A-Za-z0-9_]*``."""
    if (
        not name
        or not (name[0].isalpha() or name[0] == "_")
        or not all(c.isalnum() or c == "_" for c in name)
    ):
        raise ValueError("AMI Originate variable names are letters, digits and '_'")
    return header_value("Variable", f"{name}={value}")

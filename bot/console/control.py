"""What the console asks of Asterisk, as a small protocol the AMI client implements (``QueuePause``,
``QueueLog``). The console never speaks AMI itself; tests give it a fake that records the calls.

Only values the console has checked reach it: interfaces and member names from the agents file, queue names
and unique ids from AMI events, disposition codes from the fixed list. An agent's note never does.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class CallControlError(Exception):
    """Asterisk refused or did not answer; the console tells the agent and lets them try again."""


class CallControl(Protocol):
    """Asterisk actions for the agent console."""

    async def set_paused(self, interface: str, paused: bool, reason: str = "") -> None:
        """AMI ``QueuePause`` of the member ``interface`` in all its queues (``Reason`` = ``reason``).
        Raises :class:`CallControlError`."""

    async def queue_log(self, queue: str, uniqueid: str, member_name: str, event: str, message: str) -> None:
        """AMI ``QueueLog``: a row ``epoch|uniqueid|queue|member_name|event|message`` in queue_log.
        Raises :class:`CallControlError`."""


class LoggedCallControl:
    """A CallControl for a console without Asterisk (no AMI configured, or the demo): it only says what it
    would ask."""

    async def set_paused(self, interface: str, paused: bool, reason: str = "") -> None:
        log.info("(no Asterisk) QueuePause Interface=%s Paused=%s Reason=%s", interface, paused, reason)

    async def queue_log(self, queue: str, uniqueid: str, member_name: str, event: str, message: str) -> None:
        log.info(
            "(no Asterisk) QueueLog Queue=%s Uniqueid=%s Event=%s Message=%s", queue, uniqueid, event, message
        )

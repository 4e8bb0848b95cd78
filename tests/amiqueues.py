"""An AMI server that keeps queue members as app_queue.c does, so a test can change them and read them back.

:class:`QueueAsterisk` is :class:`tests.amiserver.AmiServer` on the ``queue-status`` capture (banner, login,
``Events``, ``Ping`` as captured) whose queues start as the capture's ``QueueStatus`` answer at the moment
it was taken (six ``attendant-*`` queues; Alice, paused for lunch, and Bob in ``attendant-billing``; two
callers waiting there). ``QueueStatus``, ``QueueAdd``, ``QueueRemove`` and ``QueuePenalty`` then work on
that state with Asterisk 22's rules and bytes (``manager_queues_status``, ``manager_add_queue_member``,
``manager_remove_queue_member``, ``manager_queue_member_penalty`` in apps/app_queue.c): the same header
order, the same messages, interfaces compared case-blind, the ``Member`` filter exact.

``lose_answer("QueueAdd")`` makes the next such action take effect and then closes the connection without
answering (Asterisk did it, the answer was lost); the base class's ``drop_on`` closes before it takes effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.amiserver import AmiServer, Capture

STATUS_ANSWERED = "a09"
"""The capture's ``QueueStatus`` of every queue (the project's six queues)."""


@dataclass
class Member:
    """``struct member``, the fields ``QueueStatus`` writes."""

    queue: str
    name: str
    interface: str
    state_interface: str
    dynamic: bool = True
    penalty: int = 0
    calls: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 1796040829
    in_call: int = 0
    status: int = 1
    paused: int = 0
    reason: str = ""
    wrapup: int = 0

    def block(self, id_text: str) -> bytes:
        return (
            f"Event: QueueMember\r\nQueue: {self.queue}\r\nName: {self.name}\r\n"
            f"Location: {self.interface}\r\n"
            f"StateInterface: {self.state_interface}\r\n"
            f"Membership: {'dynamic' if self.dynamic else 'static'}\r\nPenalty: {self.penalty}\r\n"
            f"CallsTaken: {self.calls}\r\nLastCall: {self.last_call}\r\nLastPause: {self.last_pause}\r\n"
            f"LoginTime: {self.login_time}\r\nInCall: {self.in_call}\r\nStatus: {self.status}\r\n"
            f"Paused: {self.paused}\r\nPausedReason: {self.reason}\r\nWrapuptime: {self.wrapup}\r\n"
            f"{id_text}\r\n"
        ).encode()


def _true(value: str) -> bool:
    """``ast_true``."""
    return value.lower() in ("yes", "true", "y", "t", "1", "on")


class QueueAsterisk(AmiServer):
    """Queue members kept as app_queue.c keeps them (module docstring)."""

    def __init__(self) -> None:
        super().__init__(Capture.load("queue-status"))
        status = next(a for a in self.capture.actions if a.action_id == STATUS_ANSWERED)
        self.params: dict[str, bytes] = {}
        """Queue -> its ``QueueParams`` block as captured (``ActionID`` last)."""
        self.entries: dict[str, list[bytes]] = {}
        self.members: list[Member] = []
        for data in status.answer:
            fields = dict(line.split(": ", 1) for line in data.decode().split("\r\n") if ": " in line)
            event = fields.get("Event")
            if event == "QueueParams":
                self.params[fields["Queue"]] = data
                self.entries[fields["Queue"]] = []
            elif event == "QueueEntry":
                self.entries[fields["Queue"]].append(data)
            elif event == "QueueMember":
                self.members.append(
                    Member(
                        fields["Queue"],
                        fields["Name"],
                        fields["Location"],
                        fields["StateInterface"],
                        fields["Membership"] == "dynamic",
                        int(fields["Penalty"]),
                        last_pause=int(fields["LastPause"]),
                        login_time=int(fields["LoginTime"]),
                        status=int(fields["Status"]),
                        paused=int(fields["Paused"]),
                        reason=fields["PausedReason"],
                    )
                )
        self._lose: dict[str, int] = {}

    # --- set-up by the test -----------------------------------------------------------------------------

    def add_queue(self, name: str, like: str = "attendant-general") -> None:
        """A queue configured like ``like`` (its ``QueueParams`` with the name changed)."""
        self.params[name] = self.params[like].replace(
            f"Queue: {like}\r\n".encode(), f"Queue: {name}\r\n".encode()
        )
        self.entries[name] = []

    def lose_answer(self, action: str, times: int = 1) -> None:
        """The next ``times`` ``action``s take effect, then the connection closes unanswered."""
        self._lose[action.lower()] = times

    def of(self, queue: str) -> dict[str, int]:
        """Interface -> penalty of the members of ``queue``."""
        return {m.interface: m.penalty for m in self.members if m.queue == queue}

    # --- app_queue.c -------------------------------------------------------------------------------------

    def _answer(self, name: str, pairs: list[tuple[str, str]]) -> tuple[list[bytes], bool]:
        handlers = {
            "queuestatus": self._status,
            "queueadd": self._add,
            "queueremove": self._remove,
            "queuepenalty": self._penalty,
        }
        if name not in handlers:
            return super()._answer(name, pairs)
        headers: dict[str, str] = {}
        for key, value in pairs:
            headers.setdefault(key.lower(), value)  # astman_get_header: the first, case-blind
        answer = handlers[name](headers, headers.get("actionid", ""))
        if self._lose.get(name, 0) > 0:
            self._lose[name] -= 1
            return [], True
        return answer, False

    @staticmethod
    def _id(action_id: str) -> str:
        return f"ActionID: {action_id}\r\n" if action_id else ""

    def _ack(self, action_id: str, message: str) -> list[bytes]:
        return [f"Response: Success\r\n{self._id(action_id)}Message: {message}\r\n\r\n".encode()]

    def _error(self, action_id: str, message: str) -> list[bytes]:
        return [f"Response: Error\r\n{self._id(action_id)}Message: {message}\r\n\r\n".encode()]

    def _find(self, queue: str, interface: str) -> Member | None:
        return next(
            (
                m
                for m in self.members
                if m.queue.lower() == queue.lower() and m.interface.lower() == interface.lower()
            ),
            None,
        )

    def _queue(self, name: str) -> str | None:
        return next((q for q in self.params if q.lower() == name.lower()), None)

    def _status(self, h: dict[str, str], action_id: str) -> list[bytes]:
        id_text = self._id(action_id)
        queue_filter, member_filter = h.get("queue", ""), h.get("member", "")
        listack = (
            f"Response: Success\r\n{id_text}EventList: start\r\nMessage: Queue status will follow\r\n\r\n"
        )
        out = [listack.encode()]
        items = 0
        for queue, params in self.params.items():
            if queue_filter and queue.lower() != queue_filter.lower():
                continue
            out.append(params.replace(b"ActionID: a09\r\n", id_text.encode()))
            items += 1
            for m in self.members:
                if m.queue == queue and (not member_filter or member_filter in (m.interface, m.name)):
                    out.append(m.block(id_text))
                    items += 1
            for entry in self.entries[queue]:
                out.append(entry.replace(b"ActionID: a09\r\n", id_text.encode()))
                items += 1
        complete = f"Event: QueueStatusComplete\r\n{id_text}EventList: Complete\r\nListItems: {items}\r\n\r\n"
        out.append(complete.encode())
        return out

    def _add(self, h: dict[str, str], action_id: str) -> list[bytes]:
        queue, interface = h.get("queue", ""), h.get("interface", "")
        if not queue:
            return self._error(action_id, "'Queue' not specified.")
        if not interface:
            return self._error(action_id, "'Interface' not specified.")
        try:
            penalty = max(0, int(h.get("penalty", "0") or "0"))
        except ValueError:
            penalty = 0
        known = self._queue(queue)
        if known is None:
            return self._error(action_id, "Unable to add interface to queue: No such queue")
        if self._find(known, interface) is not None:
            return self._error(action_id, "Unable to add interface: Already there")
        paused = _true(h.get("paused", ""))
        self.members.append(
            Member(
                known,
                h.get("membername") or interface,
                interface,
                h.get("stateinterface") or interface,
                penalty=penalty,
                paused=int(paused),
                reason=h.get("reason", "") if paused else "",
            )
        )
        return self._ack(action_id, "Added interface to queue")

    def _remove(self, h: dict[str, str], action_id: str) -> list[bytes]:
        queue, interface = h.get("queue", ""), h.get("interface", "")
        if not queue or not interface:
            return self._error(action_id, "Need 'Queue' and 'Interface' parameters.")
        known = self._queue(queue)
        if known is None:
            return self._error(action_id, "Unable to remove interface from queue: No such queue")
        member = self._find(known, interface)
        if member is None:
            return self._error(action_id, "Unable to remove interface: Not there")
        if not member.dynamic:
            return self._error(action_id, "Member not dynamic")
        self.members.remove(member)
        return self._ack(action_id, "Removed interface from queue")

    def _penalty(self, h: dict[str, str], action_id: str) -> list[bytes]:
        interface, penalty_s, queue = h.get("interface", ""), h.get("penalty", ""), h.get("queue", "")
        if not interface or not penalty_s:
            return self._error(action_id, "Need 'Interface' and 'Penalty' parameters.")
        try:
            penalty = int(penalty_s)
        except ValueError:
            penalty = 0
        found = [
            m
            for m in self.members
            if m.interface.lower() == interface.lower() and (not queue or m.queue.lower() == queue.lower())
        ]
        if not found or penalty < 0:
            return self._error(action_id, "Invalid interface, queuename or penalty")
        for m in found:
            m.penalty = penalty
        return self._ack(action_id, "Interface penalty set successfully")

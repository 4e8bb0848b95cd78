"""The supervisor's agents file applied to Asterisk: ``python -m bot.tools.agents apply [--dry-run]``.

``check`` only validates the file (``telephony/agents.yml``, or ``ATTENDANT_AGENTS``, or ``--file PATH``).
``apply`` validates it, reads the members of every ``attendant-*`` queue (``QueueStatus``), works out the
plan (:func:`plan_changes`, pure) and carries it out over AMI without a reload, one line per change::

    added Maya Chen (PJSIP/1001) to attendant-billing, penalty 0
    penalty of Sam Okafor (PJSIP/1002) in attendant-general 2 -> 1
    removed Bob (Local/bob@agent-never) from attendant-billing
    3 added, 1 changed, 1 removed, 12 unchanged

What the file means for Asterisk: every agent is a member of ``attendant-<skill>`` for each of their skills,
penalty from proficiency (5 -> 0 .. 1 -> 4), ``MemberName`` and ``StateInterface`` as the file says; and of
``attendant-<skill>-<lang>`` for each language other than English, when Asterisk has that queue. Members of
``attendant-*`` queues the file does not list are removed; queues with other names are never touched.
Additions go first, then penalties, then removals, so a queue is never emptied on the way. A member whose
name or state interface differs is removed and added again (AMI cannot rename one), keeping its pause.
Static members (``queues.conf``) cannot be removed over AMI: they are reported and left alone.

Each action is sent once (:class:`telephony.ami.AmiClient`, one intent per change): when the connection drops
before an answer, the state is read back after reconnecting and the action is sent again only if it is not
in effect. A refused action is reported and the others carried on.

Exit status: 0 done (or nothing to do), 1 an action failed or AMI unreachable, 2 the file (or the AMI
settings) refused: the problems on stderr with ``file:line``, nothing sent. ``--dry-run`` reads the state and
prints the plan; it sends no change. AMI settings: ``ATTENDANT_AMI_HOST``, ``_PORT``, ``_USER``, ``_SECRET``,
``_TLS``, as for the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TextIO

from bot.console.agents import AGENTS_FILE, AgentsFileError, Roster, load_agents
from telephony.ami import AmiClient, AmiConfig
from telephony.amiactions import AmiActionError, AmiError, QueueStatusSnapshot
from telephony.amievents import MemberState
from telephony.callstate import QUEUE_PREFIX, queue_name

CONNECT_TIMEOUT_S = 10.0


class Kind(str, Enum):
    ADD = "add"
    PENALTY = "penalty"
    READD = "readd"
    REMOVE = "remove"


ORDER = (Kind.ADD, Kind.READD, Kind.PENALTY, Kind.REMOVE)
"""The order changes are applied in: nobody leaves a queue before the newcomers are in."""


@dataclass(frozen=True, slots=True)
class Membership:
    """One queue membership the file asks for."""

    queue: str
    interface: str
    member_name: str
    penalty: int
    state_interface: str | None
    """As the file says; None: Asterisk uses the interface."""

    @property
    def shown(self) -> str:
        return f"{self.member_name} ({self.interface})"


@dataclass(frozen=True, slots=True)
class Change:
    """One AMI change of the plan."""

    kind: Kind
    queue: str
    interface: str
    """As Asterisk has it for an existing member; as the file says for an addition."""
    member_name: str
    penalty: int
    old_penalty: int | None = None
    state_interface: str | None = None
    paused: bool = False
    """Kept for a re-added member; additions are not paused."""
    reason: str | None = None
    why: str = ""
    """What differs, for a re-add."""

    def describe(self, done: bool = True) -> str:
        who = f"{self.member_name} ({self.interface})"
        if self.kind is Kind.ADD:
            verb = "added" if done else "add"
            return f"{verb} {who} to {self.queue}, penalty {self.penalty}"
        if self.kind is Kind.PENALTY:
            head = "penalty of" if done else "change penalty of"
            return f"{head} {who} in {self.queue} {self.old_penalty} -> {self.penalty}"
        if self.kind is Kind.READD:
            verb = "re-added" if done else "re-add"
            return f"{verb} {who} to {self.queue}, penalty {self.penalty} ({self.why})"
        verb = "removed" if done else "remove"
        return f"{verb} {who} from {self.queue}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What to send, in order, and what is already right."""

    changes: tuple[Change, ...]
    unchanged: int
    notes: tuple[str, ...] = ()
    """Things the tool will not do (static members); printed, not failures."""
    problems: tuple[str, ...] = ()
    """Memberships that cannot be made (no such queue on Asterisk); printed, and the exit status is 1."""

    def count(self, *kinds: Kind) -> int:
        return sum(c.kind in kinds for c in self.changes)


def wanted(roster: Roster, queues: Sequence[str]) -> dict[tuple[str, str], Membership]:
    """(queue, interface case-folded) -> membership, for every agent, skill and language; ``queues`` (the
    ones Asterisk has) decides which per-language queues exist."""
    existing = set(queues)
    found: dict[tuple[str, str], Membership] = {}
    for agent in roster:
        for skill, pen in agent.penalties().items():
            names = [queue_name(skill)]
            for language in agent.languages:
                per_language = queue_name(skill, language)
                if per_language not in names and per_language in existing:
                    names.append(per_language)
            for queue in names:
                found[(queue, agent.interface.casefold())] = Membership(
                    queue, agent.interface, agent.member_name, pen, agent.state_interface
                )
    return found


def plan_changes(roster: Roster, snapshot: QueueStatusSnapshot) -> Plan:
    """The changes that make Asterisk's ``attendant-*`` queues what the file says (module docstring)."""
    queues = snapshot.queue_names()
    want = wanted(roster, queues)
    have: dict[tuple[str, str], MemberState] = {
        (m.queue, m.interface.casefold()): m for m in snapshot.members if m.queue.startswith(QUEUE_PREFIX)
    }
    changes: list[Change] = []
    notes: list[str] = []
    problems: list[str] = []
    unchanged = 0
    for key, w in want.items():
        m = have.get(key)
        if m is None:
            if w.queue not in queues:
                problems.append(
                    f"cannot add {w.shown} to {w.queue}: Asterisk has no such queue (add it to queues.conf)"
                )
                continue
            changes.append(
                Change(Kind.ADD, w.queue, w.interface, w.member_name, w.penalty, None, w.state_interface)
            )
            continue
        differs = []
        if m.name != w.member_name:
            differs.append(f"member name {m.name!r} -> {w.member_name!r}")
        if m.state_interface.casefold() != (w.state_interface or w.interface).casefold():
            differs.append(f"state interface {m.state_interface} -> {w.state_interface or w.interface}")
        if differs and m.membership == "dynamic":
            changes.append(
                Change(
                    Kind.READD,
                    w.queue,
                    m.interface,
                    w.member_name,
                    w.penalty,
                    m.penalty,
                    w.state_interface,
                    paused=m.paused,
                    reason=m.paused_reason or None,
                    why=", ".join(differs),
                )
            )
            continue
        if differs:
            notes.append(
                f"kept {m.name} ({m.interface}) in {m.queue} as it is ({', '.join(differs)}): "
                f"a {m.membership} member, change it in queues.conf"
            )
        if m.penalty != w.penalty:
            changes.append(Change(Kind.PENALTY, w.queue, m.interface, m.name, w.penalty, m.penalty))
        else:
            unchanged += 1
    for key, m in have.items():
        if key in want:
            continue
        if m.membership != "dynamic":
            notes.append(
                f"kept {m.name} ({m.interface}) in {m.queue}: not in the file, but a {m.membership} member "
                "(queues.conf): remove it there"
            )
            continue
        changes.append(Change(Kind.REMOVE, m.queue, m.interface, m.name, m.penalty, m.penalty))
    changes.sort(key=lambda c: ORDER.index(c.kind))
    return Plan(tuple(changes), unchanged, tuple(notes), tuple(problems))


# --- carrying it out --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)


async def carry_out(client: AmiClient, plan: Plan, out: TextIO, err: TextIO) -> Outcome:
    """Send the plan's changes in order, printing each as it is done; a failure is printed and the rest go
    on."""
    outcome = Outcome()
    for change in plan.changes:
        key = f"agents:{change.kind.value}:{change.queue}:{change.interface}:{change.penalty}"
        try:
            if change.kind is Kind.PENALTY:
                await client.queue_penalty(change.interface, change.penalty, queue=change.queue, intent=key)
            if change.kind in (Kind.READD, Kind.REMOVE):
                await client.queue_remove(change.queue, change.interface, intent=key + ":remove")
            if change.kind in (Kind.ADD, Kind.READD):
                await client.queue_add(
                    change.queue,
                    change.interface,
                    intent=key + ":add",
                    penalty=change.penalty,
                    member_name=change.member_name,
                    state_interface=change.state_interface,
                    paused=change.paused,
                    reason=change.reason if change.paused else None,
                )
        except AmiActionError as exc:
            outcome.failed.append((change, f"Asterisk refused: {exc.message}"))
        except AmiError as exc:
            outcome.failed.append((change, str(exc)))
        else:
            outcome.done.append(change)
            print(change.describe(), file=out, flush=True)
            continue
        print(f"FAILED: {change.describe(done=False)}: {outcome.failed[-1][1]}", file=err, flush=True)
    return outcome


def summary(plan: Plan, outcome: Outcome | None) -> str:
    """``3 added, 1 changed, 1 removed, 12 unchanged`` (and what failed); the plan's counts for a dry run."""
    if outcome is None:
        parts = [
            f"{plan.count(Kind.ADD)} to add",
            f"{plan.count(Kind.PENALTY, Kind.READD)} to change",
            f"{plan.count(Kind.REMOVE)} to remove",
            f"{plan.unchanged} unchanged",
        ]
        return "dry run: " + ", ".join(parts) + "; nothing sent"
    done = outcome.done
    parts = [
        f"{sum(c.kind is Kind.ADD for c in done)} added",
        f"{sum(c.kind in (Kind.PENALTY, Kind.READD) for c in done)} changed",
        f"{sum(c.kind is Kind.REMOVE for c in done)} removed",
        f"{plan.unchanged} unchanged",
    ]
    failed = len(outcome.failed) + len(plan.problems)
    if failed:
        parts.append(f"{failed} failed")
    return ", ".join(parts)


async def apply(
    roster: Roster,
    config: AmiConfig,
    *,
    dry_run: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    client: AmiClient | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> int:
    """Read the queues, plan, apply (or print the plan); the exit status."""
    own = client is None
    client = client or AmiClient(config)
    if own:
        client.start()
    try:
        try:
            await client.wait_ready(connect_timeout_s)
            snapshot = await client.queue_status()
        except AmiError as exc:
            print(
                f"agents: cannot read the queues over AMI ({config.host}:{config.port} as "
                f"{config.username}; check ATTENDANT_AMI_*): {exc}; nothing sent",
                file=err,
            )
            return 1
        plan = plan_changes(roster, snapshot)
        for note in plan.notes:
            print(f"note: {note}", file=err)
        for problem in plan.problems:
            print(f"FAILED: {problem}", file=err)
        if dry_run:
            for change in plan.changes:
                print(change.describe(done=False), file=out)
            print(summary(plan, None), file=out)
            return 1 if plan.problems else 0
        outcome = await carry_out(client, plan, out, err)
        print(summary(plan, outcome), file=out)
        return 1 if outcome.failed or plan.problems else 0
    finally:
        if own:
            await client.close()


# --- the command ------------------------------------------------------------------------------------------


def _read(path: Path, err: TextIO) -> Roster | None:
    try:
        return load_agents(path)
    except AgentsFileError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        print(f"agents: {path} refused ({len(exc.problems)} problems); nothing sent", file=err)
    except FileNotFoundError:
        print(f"agents: {path}: no such file", file=err)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.tools.agents",
        description="Validate the agents file, or apply it to Asterisk's attendant-* queues over AMI.",
    )
    parser.add_argument("command", choices=("check", "apply"))
    parser.add_argument(
        "--file",
        type=Path,
        default=Path(os.environ.get("ATTENDANT_AGENTS", str(AGENTS_FILE))),
        help="the agents file (default: $ATTENDANT_AGENTS or telephony/agents.yml)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, send no change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    roster = _read(args.file, sys.stderr)
    if roster is None:
        return 2
    if args.command == "check":
        skills = sum(len(a.skills) for a in roster)
        print(f"{args.file}: {len(roster.agents)} agents, {skills} skills, ok")
        return 0
    try:
        config = AmiConfig.from_env()
    except ValueError as exc:
        print(f"agents: {exc}; nothing sent", file=sys.stderr)
        return 2
    return asyncio.run(apply(roster, config, dry_run=args.dry_run))


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bot.tools.agents``: the supervisor's file applied to Asterisk's queues.

The plan is tested as a pure function on constructed states; the apply on a real TCP socket against
:class:`tests.amiqueues.QueueAsterisk` (Asterisk 22's captured bytes and app_queue.c's rules), checking the
exact actions sent, that a second apply sends nothing, that a bad file sends nothing, and that a connection
dropped mid-apply adds nobody twice. The command itself runs as a child process, as a supervisor runs it.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest

from bot.console.agents import Agent, AgentsFileError, Roster, load_agents
from bot.tools.agents import Kind, apply, plan_changes
from telephony.ami import AmiClient
from telephony.amiactions import QueueStatusSnapshot
from telephony.amievents import DeviceState, MemberState, QueueParams
from telephony.callstate import Skill
from tests.amiqueues import QueueAsterisk
from tests.amitools import Sleeps, config

REPO = Path(__file__).resolve().parent.parent
BILLING = "attendant-billing"
ALICE = "Local/alice@agent-never"
BOB = "Local/bob@agent-never"
QUEUES = tuple(f"attendant-{s.value}" for s in Skill)


def agent(
    agent_id: str, interface: str, skills: dict[Skill, int], languages: tuple[str, ...] = ("en",), **kw: str
) -> Agent:
    name = kw.pop("name", agent_id.title())
    return Agent(agent_id, name, interface, name, tuple(skills.items()), languages, **kw)  # type: ignore[arg-type]


def params(queue: str) -> QueueParams:
    return QueueParams(
        queue=queue,
        max_callers=0,
        strategy="rrmemory",
        calls=0,
        hold_time_s=0,
        talk_time_s=0,
        completed=0,
        abandoned=0,
        service_level_s=60,
        service_level_perf=0.0,
        service_level_perf2=0.0,
        weight=0,
    )


def member(queue: str, interface: str, name: str, penalty: int, **kw: object) -> MemberState:
    values: dict[str, object] = {
        "queue": queue,
        "name": name,
        "interface": interface,
        "state_interface": interface,
        "membership": "dynamic",
        "penalty": penalty,
        "calls_taken": 0,
        "last_call": 0,
        "last_pause": 0,
        "login_time": 0,
        "in_call": False,
        "status": DeviceState.NOT_INUSE,
        "paused": False,
        "paused_reason": "",
        "wrapup_time_s": 0,
    }
    values.update(kw)
    return MemberState(**values)  # type: ignore[arg-type]


def snapshot(*members: MemberState, queues: tuple[str, ...] = QUEUES) -> QueueStatusSnapshot:
    return QueueStatusSnapshot(tuple(params(q) for q in queues), members, ())


# --- the plan, on constructed states ------------------------------------------------------------------


def test_an_empty_asterisk_gets_every_membership_with_penalties_from_proficiency() -> None:
    roster = Roster((agent("ada", "PJSIP/1001", {Skill.BILLING: 5, Skill.GENERAL: 2}),))
    plan = plan_changes(roster, snapshot())
    assert [(c.kind, c.queue, c.interface, c.penalty) for c in plan.changes] == [
        (Kind.ADD, "attendant-billing", "PJSIP/1001", 0),
        (Kind.ADD, "attendant-general", "PJSIP/1001", 3),
    ]
    assert plan.unchanged == 0 and not plan.notes and not plan.problems
    assert plan.changes[0].describe() == "added Ada (PJSIP/1001) to attendant-billing, penalty 0"


def test_penalties_removals_and_unchanged_and_other_queues_untouched() -> None:
    roster = Roster(
        (
            agent("ada", "PJSIP/1001", {Skill.BILLING: 5, Skill.GENERAL: 4}),
            agent("sam", "PJSIP/1002", {Skill.ORDERS: 3}),
        )
    )
    state = snapshot(
        member("attendant-billing", "PJSIP/1001", "Ada", 0),
        member("attendant-general", "pjsip/1001", "Ada", 2),  # Asterisk compares interfaces case-blind
        member("attendant-orders", "PJSIP/1002", "Sam", 2),
        member("attendant-orders", "PJSIP/1009", "Gone", 1),
        member("sales-outbound", "PJSIP/1009", "Gone", 1),  # not an attendant queue: never touched
        queues=(*QUEUES, "sales-outbound"),
    )
    plan = plan_changes(roster, state)
    assert [(c.kind, c.queue, c.interface) for c in plan.changes] == [
        (Kind.PENALTY, "attendant-general", "pjsip/1001"),
        (Kind.REMOVE, "attendant-orders", "PJSIP/1009"),
    ]
    assert plan.changes[0].describe() == "penalty of Ada (pjsip/1001) in attendant-general 2 -> 1"
    assert plan.changes[1].describe() == "removed Gone (PJSIP/1009) from attendant-orders"
    assert plan.unchanged == 2


def test_language_queues_only_where_asterisk_has_them() -> None:
    roster = Roster((agent("ada", "PJSIP/1001", {Skill.BILLING: 5}, ("en", "fr", "es", "es-MX")),))
    plan = plan_changes(roster, snapshot(queues=(*QUEUES, "attendant-billing-fr")))
    assert [c.queue for c in plan.changes] == ["attendant-billing", "attendant-billing-fr"]
    # an agent who no longer speaks French leaves the French queue
    roster = Roster((agent("ada", "PJSIP/1001", {Skill.BILLING: 5}),))
    state = snapshot(
        member("attendant-billing", "PJSIP/1001", "Ada", 0),
        member("attendant-billing-fr", "PJSIP/1001", "Ada", 0),
        queues=(*QUEUES, "attendant-billing-fr"),
    )
    assert [(c.kind, c.queue) for c in plan_changes(roster, state).changes] == [
        (Kind.REMOVE, "attendant-billing-fr")
    ]


def test_a_renamed_member_is_re_added_keeping_its_pause_and_static_ones_are_left_alone() -> None:
    roster = Roster(
        (
            agent("ada", "Local/1001@agents", {Skill.BILLING: 4}, state_interface="PJSIP/1001"),
            agent("bob", "PJSIP/1002", {Skill.BILLING: 5}),
        )
    )
    state = snapshot(
        member("attendant-billing", "Local/1001@agents", "Ada L.", 0, paused=True, paused_reason="lunch"),
        member("attendant-billing", "PJSIP/1002", "Bob", 3, membership="static"),
        member("attendant-billing", "PJSIP/1003", "Carl", 3, membership="static"),
    )
    plan = plan_changes(roster, state)
    readd, pen = plan.changes
    assert (readd.kind, readd.penalty, readd.paused, readd.reason) == (Kind.READD, 1, True, "lunch")
    assert readd.state_interface == "PJSIP/1001"
    assert "member name 'Ada L.' -> 'Ada'" in readd.why and "state interface" in readd.why
    assert (pen.kind, pen.interface, pen.old_penalty, pen.penalty) == (Kind.PENALTY, "PJSIP/1002", 3, 0)
    assert len(plan.notes) == 1 and "Carl (PJSIP/1003)" in plan.notes[0] and "static" in plan.notes[0]


def test_a_missing_skill_queue_is_a_problem_not_an_action() -> None:
    roster = Roster((agent("ada", "PJSIP/1001", {Skill.SALES: 5, Skill.BILLING: 5}),))
    plan = plan_changes(roster, snapshot(queues=("attendant-billing",)))
    assert [c.queue for c in plan.changes] == ["attendant-billing"]
    assert plan.problems == (
        "cannot add Ada (PJSIP/1001) to attendant-sales: Asterisk has no such queue (add it to queues.conf)",
    )


def test_state_interface_is_validated_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "agents.yml"
    path.write_text(
        "agents:\n"
        "  - id: a\n    name: A\n    interface: Local/1@x\n    state_interface: PJSIP/1\n"
        "    skills: {general: 3}\n"
        "  - id: b\n    name: B\n    interface: PJSIP/2\n    state_interface: bad one\n"
        "    skills: {general: 3}\n",
        encoding="utf-8",
    )
    with pytest.raises(AgentsFileError) as refused:
        load_agents(path)
    assert refused.value.problems == (
        f"{path}:10: agent 'b': state_interface 'bad one' must look like Tech/resource (PJSIP/1001) or "
        "Custom:name",
    )
    path.write_text(path.read_text().replace("bad one", "Custom:b"), encoding="utf-8")
    assert [a.state_interface for a in load_agents(path)] == ["PJSIP/1", "Custom:b"]


# --- on the wire ----------------------------------------------------------------------------------------

ROSTER_YAML = """\
agents:
  - id: maya
    name: Maya Chen
    interface: PJSIP/1001
    skills:
      billing: 5
      general: 4
    languages: [en, es]

  - id: bob
    name: Bob
    interface: Local/bob@agent-never
    state_interface: Custom:bob
    skills:
      billing: 3
"""


async def run_apply(server: QueueAsterisk, text: str, tmp_path: Path, **kw: bool) -> tuple[int, str, str]:
    path = tmp_path / "agents.yml"
    path.write_text(text, encoding="utf-8")
    roster = load_agents(path)
    client = AmiClient(config(server), sleep=Sleeps(), draw=lambda: 0.0)
    client.start()
    out, err = io.StringIO(), io.StringIO()
    try:
        status = await apply(roster, client.config, out=out, err=err, client=client, **kw)
    finally:
        await client.close()
    return status, out.getvalue(), err.getvalue()


def changing(server: QueueAsterisk) -> list[dict[str, str]]:
    """Every state-changing action received, as its headers without ActionID."""
    return [
        {k: v for k, v in r.headers if k != "ActionID"}
        for r in server.received
        if r.name in ("queueadd", "queueremove", "queuepenalty")
    ]


async def test_apply_sends_exactly_the_changes_and_a_second_apply_sends_nothing(tmp_path: Path) -> None:
    async with QueueAsterisk() as server:
        server.add_queue("attendant-billing-es")
        status, out, err = await run_apply(server, ROSTER_YAML, tmp_path)
        assert status == 0, err
        assert changing(server) == [
            {
                "Action": "QueueAdd",
                "Queue": "attendant-billing",
                "Interface": "PJSIP/1001",
                "Penalty": "0",
                "MemberName": "Maya Chen",
            },
            {
                "Action": "QueueAdd",
                "Queue": "attendant-billing-es",
                "Interface": "PJSIP/1001",
                "Penalty": "0",
                "MemberName": "Maya Chen",
            },
            {
                "Action": "QueueAdd",
                "Queue": "attendant-general",
                "Interface": "PJSIP/1001",
                "Penalty": "1",
                "MemberName": "Maya Chen",
            },
            {"Action": "QueuePenalty", "Interface": BOB, "Penalty": "2", "Queue": BILLING},
            {"Action": "QueueRemove", "Queue": BILLING, "Interface": ALICE},
        ]
        assert out.splitlines() == [
            "added Maya Chen (PJSIP/1001) to attendant-billing, penalty 0",
            "added Maya Chen (PJSIP/1001) to attendant-billing-es, penalty 0",
            "added Maya Chen (PJSIP/1001) to attendant-general, penalty 1",
            f"penalty of Bob ({BOB}) in attendant-billing 1 -> 2",
            f"removed Alice ({ALICE}) from attendant-billing",
            "3 added, 1 changed, 1 removed, 0 unchanged",
        ]
        assert server.of(BILLING) == {BOB: 2, "PJSIP/1001": 0}
        assert server.of("attendant-general") == {"PJSIP/1001": 1}
        assert [r.name for r in server.received].count("queuestatus") == 1  # one read, no read-backs
        before = len(server.received)
        status, out, _ = await run_apply(server, ROSTER_YAML, tmp_path)
        assert status == 0
        assert out.splitlines() == ["0 added, 0 changed, 0 removed, 4 unchanged"]
        assert {r.name for r in server.received[before:]} <= {"login", "events", "queuestatus", "logoff"}


async def test_a_renamed_member_is_removed_and_added_again_still_paused(tmp_path: Path) -> None:
    text = f"""\
agents:
  - id: alice
    name: Alice Adams
    interface: {ALICE}
    skills: {{billing: 5}}
  - id: bob
    name: Bob
    interface: {BOB}
    state_interface: Custom:bob
    skills: {{billing: 4}}
"""
    async with QueueAsterisk() as server:
        status, out, err = await run_apply(server, text, tmp_path)
        assert status == 0, err
        assert changing(server) == [
            {"Action": "QueueRemove", "Queue": BILLING, "Interface": ALICE},
            {"Action": "QueueAdd", "Queue": BILLING, "Interface": ALICE, "Penalty": "0",
             "MemberName": "Alice Adams", "Paused": "true", "Reason": "lunch"},
        ]  # fmt: skip
        alice = next(m for m in server.members if m.interface == ALICE)
        assert (alice.name, alice.paused, alice.reason) == ("Alice Adams", 1, "lunch")
        assert out.splitlines() == [
            f"re-added Alice Adams ({ALICE}) to attendant-billing, penalty 0 "
            "(member name 'Alice' -> 'Alice Adams')",
            "0 added, 1 changed, 0 removed, 1 unchanged",
        ]


async def test_dry_run_prints_the_plan_and_sends_no_change(tmp_path: Path) -> None:
    async with QueueAsterisk() as server:
        status, out, _ = await run_apply(server, ROSTER_YAML, tmp_path, dry_run=True)
        assert status == 0 and changing(server) == []
        assert (
            out.splitlines()[-1] == "dry run: 2 to add, 1 to change, 1 to remove, 0 unchanged; nothing sent"
        )
        assert f"change penalty of Bob ({BOB}) in attendant-billing 1 -> 2" in out


async def test_a_refused_action_is_reported_and_the_others_carried_on(tmp_path: Path) -> None:
    async with QueueAsterisk() as server:
        # Bob becomes static between the read and the removal: Asterisk refuses the QueueRemove
        text = ROSTER_YAML.split("  - id: bob")[0]
        real_remove = server._remove

        def remove(h: dict[str, str], action_id: str) -> list[bytes]:
            for m in server.members:
                m.dynamic = False
            return real_remove(h, action_id)

        server._remove = remove  # type: ignore[method-assign]
        status, out, err = await run_apply(server, text, tmp_path)
        assert status == 1
        assert (
            f"FAILED: remove Alice ({ALICE}) from attendant-billing: Asterisk refused: Member not dynamic"
            in err
        )
        assert out.splitlines()[-1] == "2 added, 0 changed, 0 removed, 0 unchanged, 2 failed"
        assert server.of("attendant-general") == {"PJSIP/1001": 1}


async def test_a_connection_dropped_mid_apply_adds_nobody_twice(tmp_path: Path) -> None:
    async with QueueAsterisk() as server:
        server.lose_answer("QueueAdd")  # the first add happens, its answer is lost with the connection
        server.drop_on("QueuePenalty")  # the penalty is taken and lost before it happens
        status, out, err = await run_apply(server, ROSTER_YAML, tmp_path)
        assert status == 0, err
        adds = [(r.get("Queue"), r.get("Interface")) for r in server.sent("queueadd")]
        assert sorted(adds) == sorted(set(adds)) and len(adds) == 2  # billing and general, once each
        assert [r.connection for r in server.sent("queuepenalty")] == [2, 3]  # not in effect: sent again
        assert server.connections == 3
        assert server.of(BILLING) == {BOB: 2, "PJSIP/1001": 0}
        assert server.of("attendant-general") == {"PJSIP/1001": 1}
        assert out.splitlines()[-1] == "2 added, 1 changed, 1 removed, 0 unchanged"


async def test_an_unreachable_asterisk_is_reported_and_nothing_sent(tmp_path: Path) -> None:
    path = tmp_path / "agents.yml"
    path.write_text(ROSTER_YAML, encoding="utf-8")
    async with QueueAsterisk() as server:
        server.reject(1000)  # every connection closed at once
        err = io.StringIO()
        status = await apply(load_agents(path), config(server), err=err, connect_timeout_s=0.3)
        assert status == 1 and "cannot read the queues over AMI" in err.getvalue()
        assert "nothing sent" in err.getvalue() and server.received == []


# --- the command, as a supervisor runs it ---------------------------------------------------------------


async def command(server: QueueAsterisk | None, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), ATTENDANT_AMI_SECRET="secret", ATTENDANT_AMI_USER="harness")
    env["ATTENDANT_AMI_PORT"] = str(server.port if server else 9)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.tools.agents",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_applies_the_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    good = tmp_path / "agents.yml"
    good.write_text(ROSTER_YAML, encoding="utf-8")
    bad = tmp_path / "bad.yml"
    bad.write_text(ROSTER_YAML.replace("billing: 3", "billing: 7").replace("general: 4", "cooking: 4"))
    async with QueueAsterisk() as server:
        status, out, err = await command(server, "apply", "--file", str(bad))
        assert status == 2 and out == ""
        assert f"{bad}:7: agent 'maya': unknown skill 'cooking'" in err
        assert f"{bad}:15: agent 'bob': proficiency" in err
        assert server.connections == 0 and server.received == []  # nothing sent, not even a login
        status, out, err = await command(server, "check", "--file", str(good))
        assert (status, out) == (0, f"{good}: 2 agents, 3 skills, ok\n")
        assert server.connections == 0
        status, out, err = await command(server, "apply", "--file", str(good))
        assert status == 0, err
        assert out.splitlines()[-1] == "2 added, 1 changed, 1 removed, 0 unchanged"
        status, out, err = await command(server, "apply", "--file", str(good))
        assert (status, out) == (0, "0 added, 0 changed, 0 removed, 3 unchanged\n")
    # the shipped file is valid
    status, out, err = await command(None, "check")
    assert status == 0 and "3 agents" in out


def test_the_queue_keeping_server_answers_queue_status_byte_for_byte_as_asterisk_did() -> None:
    server = QueueAsterisk()
    checked = []
    for captured in server.capture.actions:
        if captured.name != "queuestatus" or captured.action_id not in ("a09", "a10", "a11", "a21"):
            continue
        pairs = [(k, v) for k, v in captured.block.headers]
        answer, close = server._answer("queuestatus", pairs)
        assert not close and b"".join(answer) == b"".join(captured.answer), captured.action_id
        checked.append(captured.action_id)
    assert checked == ["a09", "a10", "a11", "a21"]  # all queues, one queue, one member by name, no queue

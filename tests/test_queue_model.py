"""The live queue model: driven through a real AMI socket by the captured scenarios, step by step on a clock
set to the capture's own time, and, for the corner cases, by constructed events (pure logic)."""

from __future__ import annotations

import pytest

from telephony.amiactions import QueueStatusSnapshot
from telephony.amievents import (
    AgentComplete,
    AgentConnect,
    ChannelSnapshot,
    CompleteReason,
    DeviceState,
    MemberState,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueEntry,
    QueueMemberStatus,
    QueueParams,
)
from telephony.queues import QueueModel, QueueSettings, QueueState
from telephony.waitestimate import NobodyCanTakeIt, WaitEstimate, estimate_wait
from tests.amitools import EPOCH, FakeClock, wired

BILLING = "attendant-billing"


def billing(model: QueueModel) -> QueueState:
    q = model.queue(BILLING)
    assert q is not None
    return q


async def test_queue_answered_step_by_step() -> None:
    async with wired("queue-answered") as w:
        epoch = EPOCH["queue-answered"]
        await w.step(
            through=lambda b: b.event == "QueueMemberAdded" and b.get("MemberName") == "Bob", at=0.002
        )
        q = billing(w.model)
        assert [(m.name, m.penalty, m.status) for m in q.members] == [
            ("Alice", 0, DeviceState.NOT_INUSE),
            ("Bob", 1, DeviceState.NOT_INUSE),
        ]
        assert q.callers == () and w.model.synced

        await w.step(through="AgentCalled", at=1.508)  # the caller joins, Alice is rung
        q = billing(w.model)
        (caller,) = q.callers
        assert (caller.uniqueid, caller.position, caller.joined_at) == ("1796040783.1", 1, epoch + 1.508)
        assert caller.attendant_uuid == "00000000-0000-4000-8000-000000000001"
        alice, bob = q.members
        assert alice.ringing and alice.caller == "1796040783.1" and not bob.ringing
        await w.step(through="QueueMemberStatus", at=1.508)  # Local members show Status 2 while rung
        assert billing(w.model).member_named("Alice").ringing  # type: ignore[union-attr]

        await w.step(through="AgentConnect", at=3.511)
        q = billing(w.model)
        alice = q.member_named("Alice")
        assert q.callers == () and alice is not None
        assert alice.in_call and not alice.ringing and alice.call_started_at == epoch + 3.511
        assert q.stats.hold_time_s == 2  # the first answered call sets app_queue's average

        await w.step(through="AgentComplete", at=9.017)
        q = billing(w.model)
        alice = q.member_named("Alice")
        assert alice is not None and not alice.in_call
        assert (alice.last_call, alice.calls_taken) == (1796040791.0, 1)
        assert q.wrapup_of(alice) == 15 and q.wrapup_ends_at(alice) == 1796040806.0
        assert q.in_wrapup(alice, epoch + 9.02) and q.in_wrapup(alice, 1796040805.9)
        assert not q.in_wrapup(alice, 1796040806.0)
        assert (q.stats.completed, q.stats.talk_time_s) == (1, 6)

        await w.step(at=10.0)  # hangups, then QueueMemberStatus with Asterisk's own LastCall
        alice = billing(w.model).member_named("Alice")
        assert alice is not None and (alice.last_call, alice.calls_taken, alice.in_call) == (
            1796040791.0,
            1,
            False,
        )


async def test_ring_no_answer_then_the_next_member() -> None:
    async with wired("ring-no-answer-then-next") as w:
        await w.step(through="AgentCalled", at=1.5)
        assert billing(w.model).member_named("Alice").ringing  # type: ignore[union-attr]
        await w.step(through="AgentRingNoAnswer", at=5.5)
        q = billing(w.model)
        assert not q.member_named("Alice").ringing and len(q.callers) == 1  # type: ignore[union-attr]
        await w.step(through="AgentCalled", at=6.5)
        assert billing(w.model).member_named("Bob").ringing  # type: ignore[union-attr]
        await w.step(through="AgentConnect", at=8.5)
        q = billing(w.model)
        bob = q.member_named("Bob")
        assert bob is not None and bob.in_call and q.callers == () and q.stats.hold_time_s == 7
        await w.step(at=14.1)
        bob = billing(w.model).member_named("Bob")
        assert bob is not None and bob.last_call == 1796040810.0 and not bob.in_call


async def test_caller_abandons_while_the_member_rings() -> None:
    async with wired("caller-abandons") as w:
        await w.step(through="AgentRingNoAnswer", at=5.5)
        await w.step(through="AgentCalled", at=6.5)
        assert billing(w.model).member_named("Alice").ringing  # type: ignore[union-attr]
        await w.step(through="QueueCallerAbandon", at=7.0)
        assert billing(w.model).stats.abandoned == 1
        await w.step(through="QueueCallerLeave", at=7.0)  # no AgentRingNoAnswer for a ring cut short
        q = billing(w.model)
        assert q.callers == () and not q.member_named("Alice").ringing  # type: ignore[union-attr]


async def test_queue_status_snapshot_and_pauses() -> None:
    async with wired("queue-status") as w:
        status = next(a for a in w.server.capture.actions if a.name == "queuestatus")
        await w.step(before=status.position, at=3.5)
        await w.tracker.resync()  # the same QueueStatus as at a reconnect
        assert len(w.model.queue_names()) == 6
        q = billing(w.model)
        alice, bob = q.members
        assert (alice.paused, alice.paused_reason, bob.state_interface, bob.status) == (
            True,
            "lunch",
            "Custom:bob",
            DeviceState.INUSE,
        )
        assert [(c.position, c.priority, c.joined_at) for c in q.callers] == [
            (1, 0, EPOCH["queue-status"] + 1.5),
            (2, 0, EPOCH["queue-status"] + 1.5),
        ]
        assert q.callers[0].attendant_uuid == "00000000-0000-4000-8000-000000000001"  # kept from the join
        await w.step(through="QueueMemberPause", at=3.52)  # unpaused
        assert not billing(w.model).member_named("Alice").paused  # type: ignore[union-attr]
        await w.step(through="QueueMemberAdded", at=4.02)
        carol = billing(w.model).member_named("Carol")
        assert carol is not None and (
            carol.paused,
            carol.paused_reason,
            carol.wrapup_time_s,
            carol.status,
        ) == (
            True,
            "training",
            30,
            DeviceState.UNKNOWN,
        )
        await w.step(through="QueueMemberRemoved", at=4.02)
        assert billing(w.model).member_named("Carol") is None
        await w.step(at=15.0)  # both callers abandon, Alice and Bob are removed
        q = billing(w.model)
        assert q.callers == () and q.members == () and q.stats.abandoned == 2


async def test_wrapup_with_the_members_own_time_and_averages_like_app_queue() -> None:
    async with wired("wrapup") as w:
        await w.step(through="AgentComplete", at=9.013)
        q = billing(w.model)
        alice = q.member_named("Alice")
        assert alice is not None and alice.wrapup_time_s == 5 and q.wrapup_of(alice) == 5
        assert q.in_wrapup(alice, 1796040984 + 4.9) and not q.in_wrapup(alice, 1796040984 + 5)
        assert [c.uniqueid for c in q.callers] == ["1796040979.5"]  # caller 2 waits out the wrap-up
        await w.step(through="AgentConnect", at=16.031)
        await w.step(at=21.6)
        ours = billing(w.model).stats
        (theirs,) = (await w.client.queue_status(BILLING, member="Alice")).params  # Asterisk's, at the end
        assert (ours.hold_time_s, ours.talk_time_s, ours.completed) == (4, 5, 2)
        assert (ours.hold_time_s, ours.talk_time_s, ours.completed) == (
            theirs.hold_time_s,
            theirs.talk_time_s,
            theirs.completed,
        )


async def test_the_least_privilege_user_keeps_the_same_model() -> None:
    async with wired("least-privilege") as w:
        await w.step(through="AgentCalled", at=1.5)
        q = billing(w.model)
        assert len(q.callers) == 1 and q.member_named("Alice").ringing  # type: ignore[union-attr]
        await w.step(through="AgentComplete", at=9.016)
        alice = billing(w.model).member_named("Alice")
        assert alice is not None and alice.last_call == 1796041011.0
        estimate = estimate_wait(billing(w.model), now=w.model.now(), priority=0)
        assert isinstance(estimate, WaitEstimate) and estimate.seconds == 0.0  # Bob is free


async def test_originate_traffic_leaves_the_model_alone() -> None:
    async with wired("originate-response") as w:
        await w.step(at=17.0)
        assert w.model.queue_names() == ()


# --- constructed events: corner cases ----------------------------------------------------------------------


def _chan(uniqueid: str, uuid: str = "") -> ChannelSnapshot:
    return ChannelSnapshot(f"PJSIP/trunk-{uniqueid}", uniqueid, variables=(("ATTENDANT_UUID", uuid),))


def _member(queue: str = BILLING, *, in_call: bool = False, last_call: int = 0, **kw: object) -> MemberState:
    values: dict[str, object] = dict(
        queue=queue,
        name="Ada",
        interface="PJSIP/1001",
        state_interface="PJSIP/1001",
        membership="dynamic",
        penalty=0,
        calls_taken=0,
        last_call=last_call,
        last_pause=0,
        login_time=1000,
        in_call=in_call,
        status=DeviceState.NOT_INUSE,
        paused=False,
        paused_reason="",
        wrapup_time_s=0,
    )
    values.update(kw)
    return MemberState(**values)  # type: ignore[arg-type]


def test_positions_follow_asterisk_renumbering() -> None:
    model = QueueModel(clock=FakeClock(100.0))
    for n, uid in enumerate(["a", "b", "c"], 1):
        model.apply(QueueCallerJoin(_chan(uid), BILLING, n, n))
    model.apply(QueueCallerJoin(_chan("vip"), BILLING, 1, 4))  # a higher priority enters ahead
    assert [(c.uniqueid, c.position) for c in billing(model).callers] == [
        ("vip", 1),
        ("a", 2),
        ("b", 3),
        ("c", 4),
    ]
    model.apply(QueueCallerLeave(_chan("a"), BILLING, 2, 3))
    model.apply(QueueCallerLeave(_chan("zz"), BILLING, 1, 3))  # unknown: nothing moves
    model.apply(QueueCallerJoin(_chan("b"), BILLING, 2, 3))  # repeated: not duplicated
    assert [(c.uniqueid, c.position) for c in billing(model).callers] == [("vip", 1), ("b", 2), ("c", 3)]
    assert model.find_caller("c") == (BILLING, billing(model).callers[2])


def test_a_stale_incall_zero_does_not_end_a_call() -> None:
    clock = FakeClock(2000.0)
    model = QueueModel(clock=clock)
    model.apply(QueueMemberStatus(_member()))
    model.apply(AgentConnect(_chan("x"), _chan("y"), BILLING, "PJSIP/1001", "Ada", 5, 2))
    model.apply(QueueMemberStatus(_member(status=DeviceState.INUSE)))  # generated before the answer
    ada = billing(model).member("PJSIP/1001")
    assert ada is not None and ada.in_call and ada.call_started_at == 2000.0
    clock.t = 2100.0
    model.apply(
        AgentComplete(_chan("x"), _chan("y"), BILLING, "PJSIP/1001", "Ada", 5, 100, CompleteReason.CALLER)
    )
    model.apply(QueueMemberStatus(_member(last_call=2100, calls_taken=1)))
    ada = billing(model).member("PJSIP/1001")
    assert ada is not None and not ada.in_call and ada.call_started_at is None and ada.last_call == 2100.0


def test_shared_lastcall_starts_wrapup_in_every_queue_of_the_member() -> None:
    clock = FakeClock(5000.0)
    for shared, expected in ((True, 5000.0), (False, 0.0)):
        model = QueueModel(QueueSettings(shared_lastcall=shared), clock=clock)
        model.apply(QueueMemberStatus(_member()))
        model.apply(QueueMemberStatus(_member("attendant-orders")))
        model.apply(
            AgentComplete(_chan("x"), _chan("y"), BILLING, "PJSIP/1001", "Ada", 1, 60, CompleteReason.AGENT)
        )
        orders = model.queue("attendant-orders")
        assert orders is not None and orders.members[0].last_call == expected


def test_rebuild_replaces_state_and_keeps_what_only_events_told() -> None:
    clock = FakeClock(3000.0)
    model = QueueModel(QueueSettings(wrapup_s={BILLING: 30}), clock=clock)
    model.apply(QueueCallerJoin(_chan("c1", "uuid-1"), BILLING, 1, 1))
    model.apply(QueueMemberStatus(_member()))
    model.apply(AgentConnect(_chan("c0"), _chan("y"), BILLING, "PJSIP/1001", "Ada", 5, 2))
    model.mark_stale()
    assert not model.synced
    clock.t = 3010.0
    params = QueueParams(BILLING, 0, "rrmemory", 1, 20, 200, 7, 1, 60, 85.7, 80.0, 0)
    entry = QueueEntry(BILLING, 1, "PJSIP/trunk-c1", "c1", "", "", 10, 5)
    model.rebuild(QueueStatusSnapshot((params,), (_member(in_call=True),), (entry,)))
    q = billing(model)
    assert model.synced and model.synced_at == 3010.0 and q.wrapup_time_s == 30
    (caller,) = q.callers
    assert (caller.priority, caller.joined_at, caller.attendant_uuid) == (5, 3000.0, "uuid-1")
    assert q.members[0].call_started_at == 3000.0  # still the same call
    assert (q.stats.talk_time_s, q.stats.completed, q.stats.service_level_perf) == (200, 7, 85.7)
    model.rebuild(QueueStatusSnapshot((), (), ()))
    assert model.queue_names() == ()


def test_unknown_queue_has_no_estimate_source() -> None:
    model = QueueModel(clock=FakeClock(1.0))
    assert model.queue("attendant-nosuch") is None
    model.apply(QueueMemberStatus(_member(paused=True)))
    result = estimate_wait(billing(model), now=1.0)
    assert isinstance(result, NobodyCanTakeIt) and result.paused == 1


@pytest.mark.parametrize("scenario", ["queue-answered", "wrapup"])
async def test_each_connect_resyncs_once(scenario: str) -> None:
    async with wired(scenario) as w:
        assert w.tracker.resyncs == 1 and w.model.synced

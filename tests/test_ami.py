"""The AMI client against Asterisk's side on a real TCP socket (tests/amiserver.py, replaying the real
captures): login, events, typed actions and errors, timeouts, reconnect with back-off, and at most one
state-changing action per intent key across a dropped connection."""

from __future__ import annotations

import asyncio
import logging

import pytest
from panoramisk import Manager

from telephony.ami import AmiClient
from telephony.amiactions import (
    AmiActionError,
    AmiConnectionLost,
    AmiIntentConflict,
    AmiNotConnected,
    AmiPermissionDenied,
    AmiTimeout,
    AmiUnconfirmed,
    Delivery,
)
from telephony.amiconn import Backoff
from telephony.amievents import OriginateReason, OriginateResponse, QueueCallerJoin, QueueMemberAdded
from tests.amiserver import AmiServer
from tests.amitools import FakeClock, Sleeps, config, wired

ALICE = "Local/alice@agent-answer-2s"
BILLING = "attendant-billing"


async def test_login_then_events_on_then_ready() -> None:
    async with wired("least-privilege") as w:
        login, events = w.server.received[0], w.server.received[1]
        assert login.raw.startswith(b"Action: Login\r\n")
        assert (login.get("Username"), login.get("Secret")) == ("attendant", "secret")
        assert (events.name, events.get("EventMask")) == ("events", "on")
        assert w.server.received[2].name == "queuestatus"  # the model's re-sync, before ready
        assert w.client.ready and w.client.connections == 1


async def test_a_wrong_secret_is_retried_with_back_off_and_never_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with AmiServer("least-privilege") as server:
        sleeps = Sleeps()
        client = AmiClient(config(server, secret="wrong"), sleep=sleeps, draw=lambda: 0.0)
        client.start()
        try:
            await server.wait(lambda: len(server.sent("login")) >= 3)
            assert not client.ready
            assert sleeps.delays[:2] == [0.5, 1.0]
            assert "Authentication failed" in caplog.text and "wrong" not in caplog.text
            assert next(r for r in caplog.records if "refused" in r.getMessage()).levelno == logging.ERROR
        finally:
            await client.close()


async def test_least_privilege_user_refusals_are_typed() -> None:
    async with wired("least-privilege") as w:
        with pytest.raises(AmiPermissionDenied) as refused:
            await w.client.originate(ALICE, intent="cb:1", channel_id="c1", application="Wait", data="1")
        assert refused.value.message == "Permission denied"
        assert len(w.server.sent("originate")) == 1
        await w.server.replay()  # the whole call, seen by this user
        await w.client.ping()
        ack = await w.client.queue_pause(ALICE, True, queue=BILLING, reason="lunch", intent="pause:alice:1")
        assert (ack.message, ack.delivery) == ("Interface paused successfully", Delivery.ANSWERED)
        log = await w.client.queue_log(BILLING, "CUSTOM", message="capture test", intent="log:1")
        assert log.message == "Event added successfully"
        with pytest.raises(AmiActionError, match="No such channel"):
            await w.client.hangup("Local/q1@direct-00000000;1", intent="hangup:1")
        summary = await w.client.queue_summary(BILLING)
        assert [(s.queue, s.logged_in, s.available) for s in summary] == [(BILLING, 2, 2)]


async def test_queue_status_all_queues_members_entries_and_an_unknown_queue() -> None:
    async with wired("queue-status") as w:
        await w.server.replay(before=lambda b: b.event == "AgentCalled")  # both callers waiting
        status = await w.client.queue_status()
        assert status.queue_names() == (
            "attendant-general",
            "attendant-support",
            "attendant-orders",
            "attendant-bookings",
            "attendant-billing",
            "attendant-sales",
        )
        alice, bob = status.members_of(BILLING)
        assert (alice.name, alice.interface, alice.paused, alice.paused_reason) == (
            "Alice",
            "Local/alice@agent-never",
            True,
            "lunch",
        )
        assert (bob.state_interface, bob.status.name, bob.penalty) == ("Custom:bob", "INUSE", 1)
        assert [(e.position, e.uniqueid, e.wait_s) for e in status.entries_of(BILLING)] == [
            (1, "1796040830.1", 2),
            (2, "1796040830.3", 2),
        ]
        one = await w.client.queue_status(BILLING, member="Alice")
        assert [m.name for m in one.members] == ["Alice"] and len(one.entries) == 2
        nothing = await w.client.queue_status("attendant-nosuch")
        assert nothing.params == nothing.members == nothing.entries == ()
        summary = await w.client.queue_summary(BILLING)
        assert (summary[0].callers, summary[0].available, summary[0].longest_hold_time_s) == (2, 0, 2)


async def test_error_responses_carry_asterisks_message() -> None:
    async with wired("queue-status") as w:
        await w.server.replay(before=lambda b: b.event == "AgentCalled")
        carol = "Local/carol@agent-never"
        with pytest.raises(AmiActionError, match="No such queue") as no_queue:
            await w.client.queue_add("attendant-nosuch", carol, intent="add:carol:nosuch")
        assert no_queue.value.message == "Unable to add interface to queue: No such queue"
        with pytest.raises(AmiActionError, match="Interface not found"):
            await w.client.queue_pause("Local/nobody@agent-never", True, intent="pause:nobody")
        added = await w.client.queue_add(
            BILLING,
            carol,
            penalty=2,
            paused=True,
            reason="training",
            member_name="Carol",
            state_interface="Custom:carol",
            wrapup_time_s=30,
            intent="add:carol",
        )
        assert added.message == "Added interface to queue"
        sent = w.server.sent("queueadd")[-1]
        assert (sent.get("Wrapuptime"), sent.get("Paused"), sent.get("Reason")) == ("30", "true", "training")
        removed = await w.client.queue_remove(BILLING, carol, intent="remove:carol:1")
        assert removed.message == "Removed interface from queue"
        with pytest.raises(AmiActionError, match="Not there"):
            await w.client.queue_remove(BILLING, carol, intent="remove:carol:2")
        with pytest.raises(AmiActionError, match="Not there"):  # a refusal is final for its intent
            await w.client.queue_remove(BILLING, carol, intent="remove:carol:2")
        assert len(w.server.sent("queueremove")) == 2


async def test_originate_waits_for_its_response() -> None:
    async with wired("originate-response") as w:
        call = asyncio.ensure_future(
            w.client.originate(
                "Local/erin@agent-answer-now",
                intent="callback:9",
                channel_id="00000000-0000-4000-8000-0000000000c1",
                application="Wait",
                data="20",
                caller_id='"Callback" <+15550100009>',
                variables={"ATTENDANT_UUID": "00000000-0000-4000-8000-000000000009"},
            )
        )
        sent = await w.server.wait_action("originate")
        assert (sent.get("ChannelId"), sent.get("Async")) == ("00000000-0000-4000-8000-0000000000c1", "true")
        assert sent.get("Variable") == "ATTENDANT_UUID=00000000-0000-4000-8000-000000000009"
        await w.server.replay(through="OriginateResponse")  # carries the client's own ActionID now
        response = await call
        assert isinstance(response, OriginateResponse)
        assert response.success and response.reason is OriginateReason.ANSWERED
        assert response.variable("ATTENDANT_UUID") == "00000000-0000-4000-8000-000000000009"
        again = await w.client.originate(
            "Local/erin@agent-answer-now",
            intent="callback:9",
            channel_id="00000000-0000-4000-8000-0000000000c1",
            application="Wait",
            data="20",
            caller_id='"Callback" <+15550100009>',
            variables={"ATTENDANT_UUID": "00000000-0000-4000-8000-000000000009"},
        )
        assert again == response and len(w.server.sent("originate")) == 1  # same intent: not called twice


async def test_a_message_without_a_required_field_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with wired("queue-answered") as w:
        join = w.server.capture.stream[w.server.capture.find("QueueCallerJoin")]
        broken = join.data.replace(b"Uniqueid: 1796040783.1\r\n", b"")
        assert broken != join.data
        await w.server.send(broken)
        await w.step(through="QueueCallerJoin")  # then the real stream, the intact join included
        assert w.client.malformed == 1
        assert "QueueCallerJoin: field Uniqueid is missing" in caplog.text
        assert "+15550100001" not in caplog.text
        joins = [e for e in w.events if isinstance(e, QueueCallerJoin)]
        assert [j.caller.uniqueid for j in joins] == ["1796040783.1"]
        assert w.client.ready and w.client.connections == 1


async def test_unanswered_read_action_times_out() -> None:
    async with wired("queue-status") as w:
        w.server.hold("queuestatus")
        with pytest.raises(AmiTimeout):
            await w.client.queue_status(timeout=0.2)
        await w.client.ping()  # the connection is fine


async def test_not_connected_means_nothing_was_sent() -> None:
    server = await AmiServer("queue-status").start()
    port = server.port
    await server.close()
    client = AmiClient(config(server, port=port), sleep=Sleeps())
    client.start()
    try:
        with pytest.raises(AmiNotConnected):
            await client.queue_log(BILLING, "CUSTOM", intent="log:x", timeout=0.2)
    finally:
        await client.close()


async def test_reconnect_backs_off_exponentially_with_jitter_and_resets() -> None:
    async with AmiServer("queue-answered") as server:
        sleeps = Sleeps()
        backoff = Backoff(initial_s=0.5, factor=2.0, max_s=3.0, jitter=0.5)
        client = AmiClient(config(server, backoff=backoff), sleep=sleeps, draw=lambda: 0.5)
        server.reject(5)
        client.start()
        try:
            await client.wait_ready(5)
            # draw 0.5 takes a quarter off each step: 0.5, 1, 2, 3 (capped), 3
            assert sleeps.delays == [0.375, 0.75, 1.5, 2.25, 2.25]
            assert client.connections == 1
        finally:
            await client.close()
    assert Backoff().delay(0, 0.0) == 0.5 and Backoff().delay(10, 0.999) >= 15.0


async def test_dropped_connection_reconnects_and_resyncs_the_model(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with wired("wrapup") as w:
        status = next(a for a in w.server.capture.actions if a.name == "queuestatus")
        await w.step(before=status.position, at=5.5)  # caller 2 waits while Alice talks to caller 1
        assert [c.uniqueid for c in w.model.queue(BILLING).callers] == ["1796040979.5"]
        await w.server.drop()
        await w.server.wait_connections(2)
        await w.client.wait_ready(5)
        assert w.client.connections == 2 and len(w.sleeps.delays) == 1
        assert len(w.server.sent("queuestatus")) == 2  # re-synced on the new connection
        billing = w.model.queue(BILLING)
        assert billing is not None and w.model.synced
        (alice,) = billing.members
        assert alice.in_call and alice.wrapup_time_s == 5  # InCall: 1 from QueueStatus
        assert [c.uniqueid for c in billing.callers] == ["1796040979.5"]
        assert "connection lost" in caplog.text and "connected as harness (connection 2)" in caplog.text


async def test_queue_log_sent_before_a_drop_is_never_sent_again() -> None:
    async with wired("queue-answered") as w:  # the harness user: Asterisk sends FullyBooted after each login
        w.server.drop_on("queuelog")
        with pytest.raises(AmiConnectionLost) as lost:
            await w.client.queue_log(
                BILLING, "WRAPUP", uniqueid="1796040783.1", message="resolved", intent="queuelog:1:resolved"
            )
        assert lost.value.intent == "queuelog:1:resolved"
        await w.server.wait_connections(2)
        await w.client.wait_ready(5)
        await w.client.ping()  # FullyBooted of the new login has been handled by now
        with pytest.raises(AmiUnconfirmed):
            await w.client.queue_log(
                BILLING, "WRAPUP", uniqueid="1796040783.1", message="resolved", intent="queuelog:1:resolved"
            )
        assert len(w.server.sent("queuelog")) == 1
        other = await w.client.queue_log(BILLING, "WRAPUP", message="resolved", intent="queuelog:2:resolved")
        assert other.delivery is Delivery.ANSWERED and len(w.server.sent("queuelog")) == 2


async def test_plain_panoramisk_would_send_it_twice() -> None:
    """Why the client switches panoramisk's resend off: on the same server, panoramisk's own Manager sends
    an unanswered QueueLog again after reconnecting (on FullyBooted)."""
    async with AmiServer("queue-answered") as server:
        manager = Manager(
            host="127.0.0.1",
            port=server.port,
            username="harness",
            secret="secret",
            reconnect_timeout=0,
            ping_delay=1000,
            loop=asyncio.get_running_loop(),
        )
        manager.connect()
        await server.wait_action("login")
        server.drop_on("queuelog")
        manager.send_action({"Action": "QueueLog", "Queue": BILLING, "Event": "CUSTOM"})
        await server.wait_action("queuelog", count=2)
        manager.close()
        assert len(server.sent("queuelog")) == 2


async def test_queue_pause_sent_before_a_drop_is_verified_not_resent() -> None:
    async with wired("queue-status") as w:
        status = next(a for a in w.server.capture.actions if a.name == "queuestatus")
        await w.step(before=status.position)  # Alice paused for lunch, two callers waiting
        w.server.drop_on("queuepause")
        alice = "Local/alice@agent-never"
        ack = await w.client.queue_pause(
            alice, True, queue=BILLING, reason="lunch", intent="pause:alice:lunch"
        )
        # the answer was lost with the connection; the state read back after reconnecting shows the pause
        assert ack.delivery is Delivery.VERIFIED
        assert len(w.server.sent("queuepause")) == 1 and w.client.connections == 2
        verify = w.server.sent("queuestatus")[-1]
        assert (verify.get("Queue"), verify.get("Member")) == (BILLING, alice)
        again = await w.client.queue_pause(
            alice, True, queue=BILLING, reason="lunch", intent="pause:alice:lunch"
        )
        assert again.delivery is Delivery.REPLAYED and len(w.server.sent("queuepause")) == 1


async def test_queue_pause_lost_and_not_in_effect_is_sent_once_more() -> None:
    async with wired("least-privilege") as w:
        status = next(a for a in w.server.capture.actions if a.name == "queuestatus")
        await w.step(before=status.position)  # Alice and Bob logged in, nobody paused
        w.server.drop_on("queuepause")
        ack = await w.client.queue_pause(
            ALICE, True, queue=BILLING, reason="lunch", intent="pause:alice:lunch"
        )
        # the state read back (Alice not paused) says it never happened: sent again, and answered
        assert ack.delivery is Delivery.ANSWERED and ack.message == "Interface paused successfully"
        assert [r.connection for r in w.server.sent("queuepause")] == [1, 2]


async def test_queue_penalty_and_its_recovery() -> None:
    async with wired("queue-status") as w:
        status = next(a for a in w.server.capture.actions if a.name == "queuestatus")
        await w.step(before=status.position)
        bob = "Local/bob@agent-never"
        ack = await w.client.queue_penalty(bob, 2, queue=BILLING, intent="penalty:bob:2")
        assert (ack.message, ack.delivery) == ("Interface penalty set successfully", Delivery.ANSWERED)
        sent = w.server.sent("queuepenalty")[0]
        assert (sent.get("Interface"), sent.get("Penalty"), sent.get("Queue")) == (bob, "2", BILLING)
        w.server.drop_on("queuepenalty")
        ack = await w.client.queue_penalty(bob, 1, queue=BILLING, intent="penalty:bob:1")
        assert ack.delivery is Delivery.VERIFIED  # QueueStatus shows Bob at penalty 1 already
        assert len(w.server.sent("queuepenalty")) == 2


async def test_unanswered_queue_log_times_out_and_stays_unconfirmed() -> None:
    async with wired("queue-answered") as w:
        w.server.hold("queuelog")
        with pytest.raises(AmiTimeout):
            await w.client.queue_log(BILLING, "CUSTOM", intent="queuelog:9:x", timeout=0.2)
        with pytest.raises(AmiUnconfirmed):
            await w.client.queue_log(BILLING, "CUSTOM", intent="queuelog:9:x", timeout=0.2)
        assert len(w.server.sent("queuelog")) == 1


async def test_concurrent_calls_with_one_intent_send_once_and_conflicts_are_refused() -> None:
    async with wired("least-privilege") as w:
        calls = [
            w.client.queue_log(BILLING, "CUSTOM", message="capture test", intent="queuelog:7:done")
            for _ in range(3)
        ]
        results = await asyncio.gather(*calls)
        assert len(w.server.sent("queuelog")) == 1
        assert [r.message for r in results] == ["Event added successfully"] * 3
        with pytest.raises(AmiIntentConflict):
            await w.client.queue_log(BILLING, "CUSTOM", message="other", intent="queuelog:7:done")
        with pytest.raises(ValueError, match="line breaks"):
            await w.client.queue_log(BILLING, "CUSTOM", message="x\r\nAction: Originate", intent="queuelog:8")
        with pytest.raises(ValueError, match="queue_log columns"):
            await w.client.queue_log(BILLING, "CUSTOM", message="a|b", intent="queuelog:8")
        assert len(w.server.sent("queuelog")) == 1


async def test_heartbeat_drops_a_connection_whose_ping_goes_unanswered() -> None:
    async with AmiServer("queue-answered") as server:
        gate = asyncio.Event()

        async def sleep(delay: float) -> None:
            if delay == 7.0:  # the heartbeat interval: beat once when the test says so
                await gate.wait()
                gate.clear()

        client = AmiClient(config(server, ping_interval_s=7.0, action_timeout_s=0.2), sleep=sleep)
        client.start()
        try:
            await client.wait_ready(5)
            server.hold("ping")
            gate.set()
            await server.wait_connections(2)
            await client.wait_ready(5)
            assert client.connections == 2
        finally:
            await client.close()


async def test_utf8_split_across_reads_and_events_as_an_async_iterator() -> None:
    async with wired("queue-answered") as w:
        added = w.server.capture.stream[w.server.capture.find("QueueMemberAdded")].data.replace(
            b"MemberName: Alice", "MemberName: Zoë".encode()
        )
        async with w.client.events() as events:
            cut = added.index("ë".encode()) + 1
            await w.server.send(added[:cut])
            await asyncio.sleep(0.01)  # lets the client read the first half on its own
            await w.server.send(added[cut:])
            event = await events.next(QueueMemberAdded, timeout=2)
        assert event.member.name == "Zoë"


def test_fake_clock_is_a_callable() -> None:
    assert FakeClock(3.0)() == 3.0

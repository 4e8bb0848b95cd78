"""The estimated wait on constructed queue states, each figure worked out by hand in the test."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.amievents import DeviceState
from telephony.queues import Caller, Member, QueueState, QueueStats
from telephony.waitestimate import DEFAULT_TALK_S, NobodyCanTakeIt, WaitEstimate, estimate_wait

NOW = 1_800_000_000.0
TALK = 240  # the queue's average talk time, s
WRAP = 15  # the queue's wrapuptime, s


def agent(name: str, **kw: object) -> Member:
    values: dict[str, object] = dict(
        name=name,
        interface=f"PJSIP/{name}",
        state_interface=f"PJSIP/{name}",
        penalty=0,
        paused=False,
        paused_reason="",
        status=DeviceState.NOT_INUSE,
        in_call=False,
        last_call=0.0,
        calls_taken=0,
        wrapup_time_s=0,
        login_time=0,
        last_pause=0,
    )
    values.update(kw)
    return Member(**values)  # type: ignore[arg-type]


def callers(*priorities: int | None) -> tuple[Caller, ...]:
    return tuple(Caller(f"u{i}", f"PJSIP/trunk-{i}", i, NOW - 60, p) for i, p in enumerate(priorities, 1))


def queue(
    members: tuple[Member, ...], waiting: tuple[Caller, ...], *, talk: int = TALK, done: int = 40
) -> QueueState:
    stats = QueueStats(strategy="rrmemory", talk_time_s=talk, completed=done)
    return QueueState("attendant-billing", stats, WRAP, members, waiting)


def wait(q: QueueState, **kw: object) -> float:
    result = estimate_wait(q, now=NOW, **kw)  # type: ignore[arg-type]
    assert isinstance(result, WaitEstimate), result
    return result.seconds


def test_the_issues_example_two_agents_five_ahead_one_paused_one_in_wrapup() -> None:
    alice = agent("alice", paused=True, paused_reason="lunch")
    bob = agent("bob", last_call=NOW - 5)  # 5 s into a 15 s wrap-up: free in 10 s
    result = estimate_wait(queue((alice, bob), callers(0, 0, 0, 0, 0)), now=NOW, priority=0)
    assert isinstance(result, WaitEstimate)
    # Bob alone serves the five callers ahead, each taking talk + wrap-up = 240 + 15 = 255 s,
    # starting when his wrap-up ends: 10 + 5 * 255 = 1285 s (21 min 25 s).
    assert (result.ahead, result.agents, result.free_in_s) == (5, 1, (10.0,))
    assert result.seconds == 10 + 5 * (240 + 15) == 1285


def test_all_agents_free_is_the_plain_rule() -> None:
    q = queue((agent("alice"), agent("bob")), callers(0, 0, 0, 0, 0))
    assert wait(q) == 5 / 2 * (240 + 15) == 637.5  # ahead / agents * (talk + wrap-up)
    assert wait(queue((agent("alice"),), ())) == 0.0  # nobody ahead, somebody free


def test_callers_ahead_by_priority() -> None:
    q = queue((agent("alice"),), callers(0, 0, 2, 5, None))
    assert estimate_wait(q, now=NOW, priority=2).ahead == 2  # type: ignore[union-attr]  # the 2 and the 5
    assert estimate_wait(q, now=NOW, priority=0).ahead == 5  # type: ignore[union-attr]  # unknown counts as 0
    assert estimate_wait(q, now=NOW, priority=9).ahead == 0  # type: ignore[union-attr]


def test_agents_freeing_up_at_different_times() -> None:
    free = agent("a")
    busy = agent("b", in_call=True, call_started_at=NOW - 155)  # 240 - 155 = 85 s of talk left, then 15 s
    members = (free, busy)
    assert estimate_wait(queue(members, ()), now=NOW).free_in_s == (0.0, 100.0)  # type: ignore[union-attr]
    assert wait(queue(members, ())) == 0.0
    # one ahead: a alone would need 255 s, but b joins at 100: W/255 + (W - 100)/255 = 1  =>  W = 177.5
    assert wait(queue(members, callers(0))) == (255 + 100) / 2 == 177.5
    # three ahead: W/255 + (W - 100)/255 = 3  =>  W = (3 * 255 + 100) / 2
    assert wait(queue(members, callers(0, 0, 0))) == (3 * 255 + 100) / 2 == 432.5
    # a later agent that is not needed does not count: b frees at 1000 s, one ahead is done by 255 s
    late = agent("c", status=DeviceState.INUSE, in_call=True, call_started_at=NOW + 745)
    assert wait(queue((free, late), callers(0))) == 255


def test_what_each_agent_state_contributes() -> None:
    def free_in(member: Member) -> float:
        return estimate_wait(queue((member,), ()), now=NOW).free_in_s[0]  # type: ignore[union-attr]

    assert free_in(agent("talking", in_call=True, call_started_at=NOW - 100)) == (240 - 100) + 15
    assert (
        free_in(agent("long-call", in_call=True, call_started_at=NOW - 1000)) == 15
    )  # overdue: wrap-up left
    assert free_in(agent("seen-in-call", in_call=True)) == 240 / 2 + 15  # start unknown (QueueStatus only)
    assert free_in(agent("on-other-call", status=DeviceState.INUSE)) == 240 / 2  # outside the queue
    assert free_in(agent("ringing", status=DeviceState.INUSE, ringing=True)) == 0
    assert free_in(agent("own-wrapup", last_call=NOW - 2, wrapup_time_s=5)) == 3  # its own 5 s, not 15
    assert free_in(agent("wrapped", last_call=NOW - 15)) == 0  # app_queue: now - 15 < lastcall is false


def test_the_members_own_wrapup_is_in_its_handle_time() -> None:
    q = queue((agent("quick", wrapup_time_s=5),), callers(0, 0))
    assert wait(q) == 2 * (240 + 5)


def test_a_fresh_queue_uses_the_default_talk_time() -> None:
    q = queue((agent("alice"),), callers(0), talk=0, done=0)
    assert wait(q) == DEFAULT_TALK_S + WRAP
    assert wait(q, default_talk_s=60) == 75


def test_penalty_range() -> None:
    q = queue((agent("expert"), agent("junior", penalty=3)), callers(0, 0))
    assert estimate_wait(q, now=NOW, max_penalty=1).agents == 1  # type: ignore[union-attr]
    assert estimate_wait(q, now=NOW, min_penalty=1).agents == 1  # type: ignore[union-attr]
    assert estimate_wait(q, now=NOW).agents == 2  # type: ignore[union-attr]


def test_nobody_can_take_it_is_its_own_answer() -> None:
    q = queue(
        (
            agent("a", paused=True),
            agent("b", penalty=4),
            agent("c", status=DeviceState.UNAVAILABLE),
            agent("d", status=DeviceState.INVALID),
        ),
        callers(0, 0),
    )
    result = estimate_wait(q, now=NOW, max_penalty=2)
    assert result == NobodyCanTakeIt("attendant-billing", members=4, paused=1, out_of_range=1, unavailable=2)
    assert estimate_wait(queue((), ()), now=NOW) == NobodyCanTakeIt("attendant-billing", 0, 0, 0, 0)
    # an agent whose device state is unknown (Status 0) can still be rung: app_queue treats it as available
    assert isinstance(
        estimate_wait(queue((agent("e", status=DeviceState.UNKNOWN),), ()), now=NOW), WaitEstimate
    )


@settings(max_examples=200, deadline=None)
@given(
    talked=st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=400)), min_size=1, max_size=6),
    ahead=st.integers(min_value=0, max_value=30),
)
def test_more_callers_never_shorten_and_another_free_agent_never_lengthens(
    talked: list[float | None], ahead: int
) -> None:
    members = tuple(
        agent(f"a{i}") if t is None else agent(f"a{i}", in_call=True, call_started_at=NOW - t)
        for i, t in enumerate(talked)
    )
    base = wait(queue(members, callers(*[0] * ahead)))
    assert base >= 0
    assert wait(queue(members, callers(*[0] * (ahead + 1)))) >= base - 1e-9
    assert wait(queue((*members, agent("extra")), callers(*[0] * ahead))) <= base + 1e-9

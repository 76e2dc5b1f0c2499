"""Request budgets per address group, per principal and per guests of an address group, and
flood penalties: the bookkeeping, on a clock the test moves.
"""

from __future__ import annotations

import pytest

from parley.protocol.messages import History, ListFiles, ListRooms, ListUsers, Ping, Send, Who
from parley.server.flood import TokenBucket, Verdict
from parley.server.request_limits import LocalRequestLimits, Refusal, request_cost
from support import FakeClock

ADDRESS, GUESTS, PRINCIPAL = Refusal.ADDRESS, Refusal.GUESTS, Refusal.PRINCIPAL


def _limits(clock: FakeClock, **changes: float) -> LocalRequestLimits:
    settings: dict[str, float] = {
        "address_burst": 10,
        "address_rate_per_second": 1.0,
        "principal_burst": 4,
        "principal_rate_per_second": 1.0,
        "guests_burst": 6,
        "guests_rate_per_second": 1.0,
        "penalty_seconds": 30.0,
        "penalty_strikes": 3,
        **changes,
    }
    return LocalRequestLimits(clock=clock, **settings)  # type: ignore[arg-type]


def test_listings_cost_more_than_anything_else() -> None:
    expensive = [
        ListRooms(id=1), Who(id=1, room="#a"), ListUsers(id=1), History(id=1, to="#a"),
        ListFiles(id=1),
    ]  # fmt: skip
    assert [request_cost(request, 5) for request in expensive] == [5] * 5
    assert request_cost(Ping(id=1), 5) == 1
    assert request_cost(Send(id=1, to="#a", text="hi", msg_id="m"), 5) == 1


def test_an_address_is_held_to_its_burst_then_its_rate_whatever_the_principals() -> None:
    clock = FakeClock()
    limits = _limits(clock, principal_burst=1000)
    verdicts = [limits.charge("192.0.2.1", f"account-{n}", 1, guest=False) for n in range(12)]
    assert verdicts == [None] * 10 + [ADDRESS] * 2
    assert limits.charge("192.0.2.2", "account-x", 1, guest=False) is None  # another address
    clock.advance(1.0)
    assert limits.charge("192.0.2.1", "account-0", 1, guest=False) is None  # one refilled
    assert limits.charge("192.0.2.1", "account-0", 1, guest=False) == ADDRESS


def test_a_principal_is_held_across_addresses() -> None:
    limits = _limits(FakeClock())
    verdicts = [limits.charge(f"192.0.2.{n}", "account-1", 1, guest=False) for n in range(6)]
    assert verdicts == [None] * 4 + [PRINCIPAL] * 2
    assert limits.charge("192.0.2.9", "", 1, guest=False) is None  # not logged in: the address


def test_new_guest_ids_from_one_address_share_one_budget() -> None:
    # Each guest id is fresh (a new login), so its own bucket is full; the guests of the
    # address together are held to 6, then 1 a second.
    clock = FakeClock()
    limits = _limits(clock)
    verdicts = [limits.charge("192.0.2.1", f"guest-{n}", 1, guest=True) for n in range(8)]
    assert verdicts == [None] * 6 + [GUESTS] * 2
    # An account at the same address, and guests elsewhere, are not held by it.
    assert limits.charge("192.0.2.1", "account-1", 1, guest=False) is None
    assert limits.charge("192.0.2.2", "guest-x", 1, guest=True) is None
    clock.advance(2.0)
    assert [limits.charge("192.0.2.1", "guest-new", 1, guest=True) for _ in range(3)] == [
        None,
        None,
        GUESTS,
    ]


def test_a_refusal_costs_nothing_so_sharing_an_address_is_fair_again_soon() -> None:
    clock = FakeClock()
    limits = _limits(clock)
    for _ in range(100):
        limits.charge("192.0.2.1", "", 5, guest=False)
    clock.advance(5.0)
    # Two of the 10 tokens went to the first two charges; hammering since cost nothing.
    assert limits.charge("192.0.2.1", "", 1, guest=False) is None
    # A principal's refusal leaves the other buckets alone, and the other way round.
    limits = _limits(FakeClock())
    assert [limits.charge("192.0.2.1", "p", 2, guest=True) for _ in range(3)] == [
        None,
        None,
        PRINCIPAL,
    ]
    assert limits.charge("192.0.2.1", "q", 3, guest=True) == GUESTS  # 6 - 4 left
    assert limits.charge("192.0.2.1", "r", 4, guest=False) is None  # 10 - 4 left
    assert limits.charge("192.0.2.1", "s", 3, guest=False) == ADDRESS  # 2 left


def test_the_burst_is_a_ceiling() -> None:
    clock = FakeClock()
    limits = _limits(clock)
    limits.charge("192.0.2.1", "", 10, guest=False)
    clock.advance(1000.0)
    assert limits.charge("192.0.2.1", "", 11, guest=False) == ADDRESS
    assert limits.charge("192.0.2.1", "", 10, guest=False) is None


def test_a_flooding_account_is_held_back_but_its_address_only_after_several_cuts() -> None:
    clock = FakeClock()
    limits = _limits(clock)
    limits.penalize("192.0.2.1", "account-1")
    assert limits.account_penalty_left("account-1") == pytest.approx(30.0)
    assert limits.account_penalty_left("account-2") == 0.0
    # One strike: the rest of the address (a NAT) may still connect.
    assert limits.penalty_left("192.0.2.1") == 0.0
    clock.advance(20.0)
    assert limits.account_penalty_left("account-1") == pytest.approx(10.0)
    limits.penalize("192.0.2.1", "")  # a guest
    assert limits.penalty_left("192.0.2.1") == 0.0
    clock.advance(20.0)
    assert limits.account_penalty_left("account-1") == 0.0
    limits.penalize("192.0.2.1", "")  # the third, within 30 s of the one before
    assert limits.penalty_left("192.0.2.1") == pytest.approx(30.0)
    assert limits.penalty_left("192.0.2.2") == 0.0
    clock.advance(30.0)
    assert limits.penalty_left("192.0.2.1") == 0.0


def test_strikes_far_apart_never_add_up() -> None:
    clock = FakeClock()
    limits = _limits(clock)
    for _ in range(10):
        limits.penalize("192.0.2.1", "")
        clock.advance(31.0)
        assert limits.penalty_left("192.0.2.1") == 0.0


def test_no_penalty_when_it_is_off() -> None:
    limits = _limits(FakeClock(), penalty_seconds=0.0, penalty_strikes=1)
    limits.penalize("192.0.2.1", "account-1")
    assert limits.penalty_left("192.0.2.1") == 0.0
    assert limits.account_penalty_left("account-1") == 0.0


def test_memory_is_bounded_by_the_most_keys() -> None:
    clock = FakeClock()
    limits = LocalRequestLimits(
        address_burst=1,
        address_rate_per_second=0.001,
        principal_burst=1,
        principal_rate_per_second=0.001,
        guests_burst=1,
        guests_rate_per_second=0.001,
        penalty_seconds=30.0,
        penalty_strikes=1,
        clock=clock,
        max_keys=100,
    )
    for n in range(1000):
        limits.charge(f"group-{n}", f"principal-{n}", 1, guest=True)
        limits.penalize(f"group-{n}", f"account-{n}")
    # The oldest were forgotten; the newest are still held.
    assert limits.charge("group-999", "", 1, guest=False) == ADDRESS
    assert limits.charge("group-0", "", 1, guest=False) is None
    assert limits.penalty_left("group-999") == pytest.approx(30.0)
    assert limits.penalty_left("group-0") == 0.0
    assert limits.account_penalty_left("account-0") == 0.0
    assert len(limits._group_penalties) <= 100
    # Expired penalties go as new ones come.
    clock.advance(31.0)
    limits.penalize("late", "")
    assert len(limits._group_penalties) == 1


def test_a_connection_bucket_charges_the_cost_of_each_request() -> None:
    bucket = TokenBucket(burst=30, rate_per_second=1.0, debt_limit=20, now=0.0)
    assert [bucket.take(0.0, 5) for _ in range(7)] == [Verdict.ALLOW] * 6 + [Verdict.REFUSE]
    # 5 of debt; four more refusals pass the limit of 20.
    assert [bucket.take(0.0, 5) for _ in range(4)] == [Verdict.REFUSE] * 3 + [Verdict.DROP]

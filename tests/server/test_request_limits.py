"""Request budgets per address group and per principal, and flood penalties: the bookkeeping,
the time passed in.
"""

from __future__ import annotations

from parley.protocol.messages import History, ListFiles, ListRooms, ListUsers, Ping, Send, Who
from parley.server.flood import TokenBucket, Verdict
from parley.server.request_limits import LocalRequestLimits, request_cost


def _limits(**changes: float) -> LocalRequestLimits:
    settings: dict[str, float] = {
        "address_burst": 10,
        "address_rate_per_second": 1.0,
        "principal_burst": 4,
        "principal_rate_per_second": 1.0,
        "penalty_seconds": 30.0,
        **changes,
    }
    return LocalRequestLimits(**settings)  # type: ignore[arg-type]


def test_listings_cost_more_than_anything_else() -> None:
    expensive = [
        ListRooms(id=1), Who(id=1, room="#a"), ListUsers(id=1), History(id=1, to="#a"),
        ListFiles(id=1),
    ]  # fmt: skip
    assert [request_cost(request, 5) for request in expensive] == [5] * 5
    assert request_cost(Ping(id=1), 5) == 1
    assert request_cost(Send(id=1, to="#a", text="hi", msg_id="m"), 5) == 1


def test_an_address_is_held_to_its_burst_then_its_rate_whatever_the_principals() -> None:
    limits = _limits(principal_burst=1000)
    verdicts = [limits.charge("192.0.2.1", f"guest-{n}", 1, 0.0) for n in range(12)]
    assert verdicts == [None] * 10 + ["address"] * 2
    assert limits.charge("192.0.2.2", "guest-x", 1, 0.0) is None  # another address
    assert limits.charge("192.0.2.1", "guest-0", 1, 1.0) is None  # one refilled
    assert limits.charge("192.0.2.1", "guest-0", 1, 1.0) == "address"


def test_a_principal_is_held_across_addresses() -> None:
    limits = _limits()
    verdicts = [limits.charge(f"192.0.2.{n}", "account-1", 1, 0.0) for n in range(6)]
    assert verdicts == [None] * 4 + ["principal"] * 2
    assert limits.charge("192.0.2.9", "", 1, 0.0) is None  # not logged in: the address only


def test_a_refusal_costs_nothing_so_sharing_an_address_is_fair_again_soon() -> None:
    limits = _limits()
    for _ in range(100):
        limits.charge("192.0.2.1", "", 5, 0.0)
    # Two of the 10 tokens went to the first two charges; hammering since cost nothing.
    assert limits.charge("192.0.2.1", "", 1, 5.0) is None
    # A principal's refusal leaves the address's bucket alone, and the other way round.
    limits = _limits()
    assert [limits.charge("192.0.2.1", "p", 2, 0.0) for _ in range(3)] == [None, None, "principal"]
    assert limits.charge("192.0.2.1", "q", 4, 0.0) is None  # 10 - 4 left for the address
    assert limits.charge("192.0.2.1", "r", 3, 0.0) == "address"  # 2 left


def test_the_burst_is_a_ceiling() -> None:
    limits = _limits()
    limits.charge("192.0.2.1", "", 10, 0.0)
    assert limits.charge("192.0.2.1", "", 11, 1000.0) == "address"
    assert limits.charge("192.0.2.1", "", 10, 1000.0) is None


def test_a_penalty_lasts_its_time_for_its_group_only() -> None:
    limits = _limits()
    assert limits.penalty_left("192.0.2.1", 0.0) == 0.0
    limits.penalize("192.0.2.1", 100.0)
    assert limits.penalty_left("192.0.2.1", 100.0) == 30.0
    assert limits.penalty_left("192.0.2.1", 120.0) == 10.0
    assert limits.penalty_left("192.0.2.2", 120.0) == 0.0
    assert limits.penalty_left("192.0.2.1", 130.0) == 0.0
    # Cut again: the time starts over.
    limits.penalize("192.0.2.1", 200.0)
    limits.penalize("192.0.2.1", 210.0)
    assert limits.penalty_left("192.0.2.1", 230.0) == 10.0


def test_no_penalty_when_it_is_off() -> None:
    limits = _limits(penalty_seconds=0.0)
    limits.penalize("192.0.2.1", 0.0)
    assert limits.penalty_left("192.0.2.1", 0.0) == 0.0


def test_memory_is_bounded_by_the_most_keys() -> None:
    limits = LocalRequestLimits(
        address_burst=1,
        address_rate_per_second=0.001,
        principal_burst=1,
        principal_rate_per_second=0.001,
        penalty_seconds=30.0,
        max_keys=100,
    )
    for n in range(1000):
        limits.charge(f"group-{n}", f"principal-{n}", 1, 0.0)
        limits.penalize(f"group-{n}", 0.0)
    # The oldest were forgotten; the newest are still held.
    assert limits.charge("group-999", "", 1, 0.0) == "address"
    assert limits.charge("group-0", "", 1, 0.0) is None
    assert limits.penalty_left("group-999", 0.0) == 30.0
    assert limits.penalty_left("group-0", 0.0) == 0.0
    assert len(limits._penalties) <= 100
    # Expired penalties go as new ones come.
    limits.penalize("late", 31.0)
    assert len(limits._penalties) == 1


def test_a_connection_bucket_charges_the_cost_of_each_request() -> None:
    bucket = TokenBucket(burst=30, rate_per_second=1.0, debt_limit=20, now=0.0)
    assert [bucket.take(0.0, 5) for _ in range(7)] == [Verdict.ALLOW] * 6 + [Verdict.REFUSE]
    # 5 of debt; four more refusals pass the limit of 20.
    assert [bucket.take(0.0, 5) for _ in range(4)] == [Verdict.REFUSE] * 3 + [Verdict.DROP]

"""TokenBucket: burst, refusal, recovery and the debt that ends in a drop."""

from parley.server.flood import TokenBucket, Verdict


def test_burst_is_allowed_then_refused() -> None:
    bucket = TokenBucket(burst=5, rate_per_second=1.0, debt_limit=10, now=100.0)
    assert [bucket.take(100.0) for _ in range(5)] == [Verdict.ALLOW] * 5
    assert bucket.take(100.0) is Verdict.REFUSE


def test_recovers_at_the_steady_rate() -> None:
    bucket = TokenBucket(burst=3, rate_per_second=2.0, debt_limit=10, now=0.0)
    for _ in range(3):
        assert bucket.take(0.0) is Verdict.ALLOW
    assert bucket.take(0.0) is Verdict.REFUSE  # one token of debt
    # 0.5 s at 2/s earns one token: back to zero, not enough yet.
    assert bucket.take(0.5) is Verdict.REFUSE
    # 1 s more earns two tokens: the debt of that refusal is paid and one is left.
    assert bucket.take(1.5) is Verdict.ALLOW
    assert bucket.take(1.5) is Verdict.REFUSE


def test_full_recovery_after_a_long_pause_is_capped_at_burst() -> None:
    bucket = TokenBucket(burst=3, rate_per_second=1.0, debt_limit=5, now=0.0)
    for _ in range(6):
        bucket.take(0.0)
    verdicts = [bucket.take(1000.0) for _ in range(4)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.REFUSE]


def test_steady_rate_is_always_allowed() -> None:
    bucket = TokenBucket(burst=2, rate_per_second=10.0, debt_limit=5, now=0.0)
    for step in range(1, 1000):
        assert bucket.take(step * 0.1) is Verdict.ALLOW


def test_sending_while_refused_runs_into_debt_and_drop() -> None:
    burst, debt_limit = 4, 3
    bucket = TokenBucket(burst=burst, rate_per_second=1.0, debt_limit=debt_limit, now=0.0)
    verdicts = [bucket.take(0.0) for _ in range(burst + debt_limit + 2)]
    assert verdicts == (
        [Verdict.ALLOW] * burst + [Verdict.REFUSE] * debt_limit + [Verdict.DROP] * 2
    )


def test_sustained_sending_faster_than_the_rate_is_dropped() -> None:
    bucket = TokenBucket(burst=10, rate_per_second=10.0, debt_limit=20, now=0.0)
    verdicts = []
    now = 0.0
    for _ in range(200):
        now += 0.05  # 20 per second, twice the rate
        verdicts.append(bucket.take(now))
        if verdicts[-1] is Verdict.DROP:
            break
    assert verdicts[-1] is Verdict.DROP
    assert Verdict.REFUSE in verdicts
    # 10 tokens of burst plus 20 of debt, gaining 0.5 per request net: about 60 requests.
    assert 55 <= len(verdicts) <= 65


def test_pausing_while_in_debt_avoids_the_drop() -> None:
    bucket = TokenBucket(burst=2, rate_per_second=1.0, debt_limit=2, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.REFUSE,
        Verdict.REFUSE,
    ]
    # Two tokens of debt; three seconds pay it off and earn one.
    assert bucket.take(3.0) is Verdict.ALLOW


def test_debt_is_capped_so_recovery_time_is_bounded() -> None:
    bucket = TokenBucket(burst=1, rate_per_second=1.0, debt_limit=2, now=0.0)
    for _ in range(1000):
        bucket.take(0.0)
    # However much it sent, the bucket is at most debt_limit + 1 below zero.
    assert bucket.take(4.0) is Verdict.ALLOW

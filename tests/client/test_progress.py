"""How a transfer's progress reads, and how often a pipe is told."""

from __future__ import annotations

from parley.client.progress import Meter, describe
from parley.client.transfer import Progress


def test_progress_reads_with_rate_and_time_left() -> None:
    progress = Progress("f" * 32, "report.pdf", 1_100_000, 2_400_000, upload=True)
    expected = "↑ report.pdf 46% 1 MiB of 2.3 MiB, 3.1 MiB/s, 1s left"
    assert describe(progress, 3_200_000) == expected
    assert describe(progress, 0.0, bar=True).startswith("↑ report.pdf [#########           ] 46%")
    done = Progress("f" * 32, "x.bin", 10, 10, upload=False)
    assert describe(done, 5.0) == "↓ x.bin 100% 10 bytes of 10 bytes, 5 bytes/s"


def test_the_rate_counts_only_what_moved_and_lines_are_spaced() -> None:
    now = [100.0]
    meter = Meter(lambda: now[0])
    resumed = Progress("f" * 32, "x", 500, 1000, upload=True)
    assert meter.rate(resumed) == 0.0
    assert meter.due(resumed)  # the first report
    now[0] += 1.0
    later = Progress("f" * 32, "x", 700, 1000, upload=True)
    assert meter.rate(later) == 200.0  # not counting the 500 resumed
    assert not meter.due(later)
    now[0] += 2.0
    assert meter.due(later)
    assert meter.due(Progress("f" * 32, "x", 1000, 1000, upload=True))  # the last, always

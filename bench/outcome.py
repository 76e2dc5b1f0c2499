"""What one run of a workload against one server yields."""

from __future__ import annotations

import dataclasses
from typing import Any

Figure = int | float | None  # None: could not be measured (say, no latency samples)


@dataclasses.dataclass
class Outcome:
    figures: dict[str, Figure]  # the numbers medians are taken of
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # kept in the JSON only
    notes: list[str] = dataclasses.field(default_factory=list)  # printed under the table

"""The benchmark package lives at the top of the checkout, next to tests/, not in src/."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# First, so that the package wins over tests/bench, which Python would take for a namespace
# package called "bench".
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

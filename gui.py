"""Run the Parley desktop app: ``python gui.py [--theme dark]``."""

import sys
from pathlib import Path

# Lets a plain checkout run without installing Parley; parley.checkout finds its dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from parley.checkout import run

if __name__ == "__main__":
    sys.exit(run(Path(__file__).resolve(), "gui_main"))

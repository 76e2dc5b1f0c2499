"""Run the Parley desktop app: ``python gui.py [--theme dark]``."""

import sys
from pathlib import Path

# Lets a plain checkout run after `pip install -r requirements-gui.txt`, without installing Parley.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from parley.cli import gui_main

if __name__ == "__main__":
    sys.exit(gui_main())

"""Run the Parley server: ``python server.py [--port 7976] ...`` (see ``--help``)."""

import sys
from pathlib import Path

# Lets a plain checkout run after `pip install -r requirements.txt`, without installing Parley.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from parley.cli import server_main

if __name__ == "__main__":
    sys.exit(server_main())

"""Run the Parley client: ``python client.py [--host 127.0.0.1] [--port 7976] ...``."""

import sys
from pathlib import Path

# Lets a plain checkout run after `pip install -r requirements.txt`, without installing Parley.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from parley.cli import client_main

if __name__ == "__main__":
    sys.exit(client_main())

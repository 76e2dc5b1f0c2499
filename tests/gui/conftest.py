"""The desktop app under test: Qt offscreen, asyncio on the Qt loop (qasync), a real server
process over TLS (see desktop_support).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop_support import ServerProcess


def desktop_loop_class() -> type[asyncio.AbstractEventLoop]:
    """qasync's loop, for a test that runs it many times (``run_until_complete`` per step).

    qasync's ``run_until_complete`` runs Qt's events once more after its loop stopped, when
    asyncio no longer sees a running loop: a task step taken there fails on the first asyncio
    queue or lock it waits on ("bound to a different event loop"). The app runs its loop once,
    so only a test meets this; here that last pass still counts as the loop running.
    """
    import qasync

    class TestLoop(qasync.QEventLoop):  # type: ignore[misc]
        def _after_run_forever(self) -> None:
            super()._after_run_forever()
            asyncio.events._set_running_loop(self)

        def run_until_complete(self, future: Any) -> Any:
            try:
                return super().run_until_complete(future)
            finally:
                asyncio.events._set_running_loop(None)

    return TestLoop


@pytest.fixture
def qt_loop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    loop = desktop_loop_class()(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    yield loop
    # Let closed windows say goodbye, then stop what is left, then close the loop while Qt's
    # objects still exist (closing it later, from a finaliser, fails).
    loop.run_until_complete(asyncio.sleep(0.5))
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0.1))
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path / "server")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user" / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user" / "data"))
    return tmp_path / "user"

"""The real ``parley gui`` process on a real X server (Xvfb), driven with real key presses and
mouse clicks: the way a user signs in for the first time, and what used to kill the process
(closing the fingerprint question stopped the event loop under the sign-in).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from desktop_support import Peer, ServerProcess
from xvfb_support import ROOT, Desktop, Xvfb, start_gui

from parley.gui.dialogs import BUTTON_HEIGHT, BUTTON_WIDTH
from parley.tls import ensure_certificate

PASSWORD = "correct horse 42"


@pytest.fixture
def desktop() -> Iterator[Desktop]:
    screen = Xvfb()
    try:
        yield Desktop(screen.display)
    finally:
        screen.stop()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_first_sign_in_with_a_password_on_a_real_display(
    desktop: Desktop, server: ServerProcess, tmp_path: Path
) -> None:
    # Bob is a registered nickname: signing in as Bob asks for the password.
    bob = Peer(server.port, "Bob")
    bob.call(bob.client.register(PASSWORD))
    bob.close()
    log = tmp_path / "gui.log"
    gui = start_gui(desktop.env["DISPLAY"], tmp_path / "user", log=log)
    carol = Peer(server.port, "Carol")
    try:
        # The connect dialog: the keyboard fills in server, port and nickname.
        connect = desktop.wait_window("^Connect to Parley$")
        desktop.keys("ctrl+a")
        desktop.type("127.0.0.1")
        desktop.keys("Tab", "ctrl+a")
        desktop.type(str(server.port))
        desktop.keys("Tab", "ctrl+a")
        desktop.type("Bob")
        desktop.keys("Return")
        desktop.wait_gone(connect)

        # The first connection: the fingerprint, trusted with a click on its button, the
        # first of the two at the bottom right (the style's margins: 11 px at the right,
        # 12 px below, 6 px between buttons).
        question = desktop.wait_window("^New server$")
        desktop.click(
            question, -(11 + BUTTON_WIDTH + 6 + BUTTON_WIDTH // 2), -(12 + BUTTON_HEIGHT // 2)
        )
        desktop.wait_gone(question)
        time.sleep(1)
        assert gui.poll() is None, f"the app died after the question: {log.read_text()}"
        pins = tmp_path / "user" / "config" / "parley" / "known_servers"
        assert pins.is_file(), log.read_text()

        # The password, typed into its prompt.
        prompt = desktop.wait_window("^Password$")
        desktop.type(PASSWORD)
        desktop.keys("Return")
        desktop.wait_gone(prompt)
        desktop.wait_window("Bob$")

        time.sleep(5)
        assert gui.poll() is None, f"the app died: {log.read_text()}"
        seen = carol.call(carol.client.whois("Bob"))
        assert seen.online and seen.account, seen
    finally:
        carol.close()
        _stop(gui)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_a_refused_connection_leaves_the_app_running(desktop: Desktop, tmp_path: Path) -> None:
    """The hostile twin: nothing listens on the port; the warning closes, the connect dialog is
    back for another try, and the process is still there.
    """
    log = tmp_path / "gui.log"
    gui = start_gui(
        desktop.env["DISPLAY"], tmp_path / "user", "--host", "127.0.0.1", "--port", "9",
        "--nick", "Dave", log=log,
    )  # fmt: skip
    try:
        connect = desktop.wait_window("^Connect to Parley$")
        desktop.keys("Return")
        desktop.wait_gone(connect)
        warning = desktop.wait_window("^Parley$")
        desktop.keys("Escape")
        desktop.wait_gone(warning)
        desktop.wait_window("^Connect to Parley$")
        assert gui.poll() is None, log.read_text()
        desktop.keys("Escape")  # Cancel: the user gives up, the app ends normally
        assert gui.wait(10) == 0, log.read_text()
    finally:
        _stop(gui)


def test_no_display_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run(
        [sys.executable, "-m", "parley", "gui"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "DISPLAY" in done.stderr, done.stderr
    assert done.stdout == ""


def test_cafile_verifies_the_server_without_asking_on_a_real_display(
    desktop: Desktop, server: ServerProcess, tmp_path: Path
) -> None:
    """With --cafile the chain is checked against that bundle: no fingerprint question and no
    pin. A bundle that did not sign the server's certificate is a warning, and the connect
    dialog comes back.
    """
    own = server.home / "data" / "parley" / "cert.pem"
    stranger, _ = ensure_certificate(tmp_path / "stranger", ["127.0.0.1"])
    for bundle, signs in ((stranger, False), (own, True)):
        log = tmp_path / f"gui-{signs}.log"
        gui = start_gui(
            desktop.env["DISPLAY"], tmp_path / "user", "--host", "127.0.0.1",
            "--port", str(server.port), "--nick", "Dave", "--cafile", str(bundle), log=log,
        )  # fmt: skip
        try:
            connect = desktop.wait_window("^Connect to Parley$")
            desktop.keys("Return")
            desktop.wait_gone(connect)
            if signs:
                desktop.wait_window("Dave$")
                carol = Peer(server.port, "Carol")
                try:
                    assert carol.call(carol.client.whois("Dave")).online
                finally:
                    carol.close()
            else:
                warning = desktop.wait_window("^Parley$")
                desktop.keys("Escape")
                desktop.wait_gone(warning)
                desktop.wait_window("^Connect to Parley$")
                assert gui.poll() is None, log.read_text()
        finally:
            _stop(gui)
        assert "Traceback" not in log.read_text(), log.read_text()
    assert not (tmp_path / "user" / "config" / "parley" / "known_servers").exists()

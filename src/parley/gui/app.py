"""``parley gui`` / ``python gui.py``: the desktop app.

Start-up, in order: the connect dialog (server, port and nickname remembered in
``gui.json``; the password never stored), the connection, the certificate (a first one is
shown for the user to accept into the same pin file the terminal client uses; a changed one is
refused with a warning that only closes the app), the login (saved token, else the password),
then the main window. Everything network runs on the Qt event loop through qasync, inside one
``run_until_complete``; dialogs are awaited, never run in a nested loop (see dialogs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from parley.client.commands import Chat
from parley.client.conversations import Conversations
from parley.client.core import ChatClient, ConnectionLost
from parley.client.credentials import SessionStore
from parley.client.credentials import default_path as default_sessions_path
from parley.client.ignores import IgnoreList
from parley.client.ignores import default_path as default_ignores_path
from parley.client.pins import CertificateChanged, PinStore, server_name
from parley.client.settings import ClientSettings
from parley.gui import dialogs, display
from parley.gui import theme as themes
from parley.gui.main_window import MainWindow
from parley.paths import default_config_dir
from parley.protocol.errors import ErrorCode, RequestRefused
from parley.tls import CertificateProblem, explain_refusal

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CERTIFICATE_CHANGED = 0, 1, 2, 3
REMEMBERED = "gui.json"
log = logging.getLogger("parley.gui")


class ConnectDialog(QDialog):
    def __init__(self, remembered: dict[str, object], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to Parley")
        self.host = QLineEdit(str(remembered.get("host", "127.0.0.1")))
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(str(remembered.get("port", 7976))))
        self.nick = QLineEdit(str(remembered.get("nick", "")))
        self.nick.setMaxLength(32)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("only for a registered nickname")
        # Wide enough for the placeholder above in any of the usual fonts.
        self.setMinimumWidth(440)
        self.remember = QCheckBox("Remember server and nickname")
        self.remember.setChecked(True)
        form = QFormLayout(self)
        form.addRow("Server", self.host)
        form.addRow("Port", self.port)
        form.addRow("Nickname", self.nick)
        form.addRow("Password", self.password)
        form.addRow(self.remember)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


def load_remembered(config_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((config_dir / REMEMBERED).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_remembered(config_dir: Path, host: str, port: int, nick: str) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"host": host, "port": port, "nick": nick})
    (config_dir / REMEMBERED).write_text(body, "utf-8")


class Session:
    """One sign-in: the connection, the trust decision and the login. The questions it asks
    (accept a certificate, a password) are methods, so tests can answer them.
    """

    def __init__(self, host: str, port: int, config_dir: Path, cafile: Path | None = None) -> None:
        self.host, self.port, self.cafile = host, port, cafile
        self.pins = PinStore(config_dir / "known_servers")

    async def connect(self, conversations: Conversations | None = None) -> ChatClient:
        """Connect; with a pin, verified against it (CertificateChanged on a mismatch)."""
        pinned = self.pins.pinned(server_name(self.host, self.port))
        return await ChatClient.connect(
            self.host,
            self.port,
            pins=self.pins if pinned is not None or self.cafile is not None else None,
            cafile=self.cafile,
            conversations=conversations,
        )

    def needs_acceptance(self, client: ChatClient) -> bool:
        return self.cafile is None and self.pins.pinned(client.identity.server) is None

    def accept(self, client: ChatClient) -> None:
        self.pins.pin(client.identity.server, client.identity.fingerprint)


async def ask_to_trust(parent: QWidget, client: ChatClient) -> bool:
    return await dialogs.confirm(
        parent,
        "New server",
        f"This is the first connection to {client.identity.server}.",
        f"Its certificate's SHA-256 fingerprint is:\n{client.identity.fingerprint}\n\n"
        "Compare it with the one the server printed when it started. Trust this server?",
        "Trust",
    )


async def warn_changed(parent: QWidget, changed: CertificateChanged) -> None:
    await dialogs.warn(parent, "Certificate changed", changed.explain())


async def log_in(chat: Chat, nick: str, password: str) -> str | None:
    """Log in as ``nick``; None when done, else why not (for the user)."""
    client, sessions = chat.client, chat.sessions
    token = sessions.token(client.identity.server, nick) if sessions is not None else None
    try:
        await client.login(nick, password=password or None, token=None if password else token)
    except RequestRefused as refusal:
        if refusal.code == ErrorCode.SESSION_EXPIRED:
            chat.forget_token(nick)
        if refusal.code in (ErrorCode.PASSWORD_REQUIRED, ErrorCode.SESSION_EXPIRED):
            asked = await chat.ask_secret(f"{refusal.message}\nPassword for {nick}:")
            if not asked:
                return refusal.message
            return await log_in(chat, nick, asked)
        return refusal.message
    chat.save_token(client.token)
    return None


async def open_window(
    session: Session, nick: str, password: str, settings: ClientSettings, parent: QWidget
) -> MainWindow | int:
    """Connect, trust, log in; the main window, or an exit status. Every question is asked in a
    dialog parented to ``parent``.
    """
    try:
        client = await session.connect()
    except CertificateChanged as changed:
        await warn_changed(parent, changed)
        return EXIT_CERTIFICATE_CHANGED
    except CertificateProblem as problem:
        await dialogs.warn(parent, "Parley", "Cannot connect.", str(problem))
        return EXIT_FAILED
    except ssl.SSLCertVerificationError as unverified:
        await dialogs.warn(
            parent,
            "Parley",
            f"Cannot connect to {session.host}:{session.port}.",
            explain_refusal(unverified, session.cafile),
        )
        return EXIT_FAILED
    except (OSError, ssl.SSLError, TimeoutError, ConnectionLost, RequestRefused) as exc:
        await dialogs.warn(
            parent,
            "Parley",
            f"Cannot connect to {session.host}:{session.port}.",
            f"{exc}\n\nCheck the server's address and port, and that it is running.",
        )
        return EXIT_FAILED
    if session.needs_acceptance(client):
        if not await ask_to_trust(parent, client):
            await client.close()
            return EXIT_FAILED
        session.accept(client)

    async def ask_password(prompt: str) -> str | None:
        return await dialogs.ask_secret(parent, "Password", prompt)

    chat = Chat(
        client,
        lambda text: None,
        ask_password,
        SessionStore(default_sessions_path()),
        ignores=IgnoreList(default_ignores_path()),
        downloads=settings.downloads(),
    )
    refused = await log_in(chat, nick, password)
    if refused is not None:
        await dialogs.warn(parent, "Parley", f"Cannot log in as {nick}.", refused)
        await client.close()
        return EXIT_FAILED
    window = MainWindow(chat, settings, session.connect)
    window.start()
    return window


async def sign_in(
    dialog: ConnectDialog, config_dir: Path, settings: ClientSettings, cafile: Path | None = None
) -> MainWindow | int:
    """The connect dialog until a sign-in works (a failure shows the dialog again), the user
    cancels (EXIT_OK), or the server's certificate changed (EXIT_CERTIFICATE_CHANGED).
    """
    while True:
        if await dialogs.shown(dialog) != QDialog.DialogCode.Accepted:
            return EXIT_OK
        host, port = dialog.host.text().strip(), dialog.port.value()
        nick = dialog.nick.text().strip()
        if dialog.remember.isChecked():
            save_remembered(config_dir, host, port, nick)
        session = Session(host, port, config_dir, cafile)
        try:
            opened = await open_window(session, nick, dialog.password.text(), settings, dialog)
        except Exception as error:  # a bug: shown and logged, and the user may try again
            log.error("Unexpected error while signing in", exc_info=error)
            await dialogs.warn(
                dialog,
                "Parley",
                f"Unexpected error while signing in: {type(error).__name__}: {error}",
                "The details are in the log.",
            )
            continue
        if opened != EXIT_FAILED:
            return opened


async def run_app(
    app: QApplication,
    settings: ClientSettings,
    given: dict[str, object],
    reports: Reports,
    cafile: Path | None = None,
) -> int:
    """Sign in, then keep the window until it is closed; the exit status."""
    config_dir = default_config_dir()
    dialog = ConnectDialog({**load_remembered(config_dir), **given})
    opened = await sign_in(dialog, config_dir, settings, cafile)
    if isinstance(opened, int):
        return opened
    reports.window = opened
    opened.show()
    opened.raise_()
    opened.activateWindow()
    finished = asyncio.Event()
    opened.closed.connect(finished.set)
    await finished.wait()
    await opened.leave()
    return EXIT_FAILED if opened.gave_up else EXIT_OK


class Reports:
    """Where an unexpected error goes: the log, always, and the main window once there is one
    (else a message box). The process carries on: one failed task must not end the chat.
    """

    def __init__(self) -> None:
        self.window: MainWindow | None = None

    def asyncio_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, BaseException):
            self.error(error)
        else:
            log.error("Unexpected: %s", context.get("message", context))

    def qt_error(
        self, kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        self.error(error.with_traceback(trace))

    def error(self, error: BaseException) -> None:
        if self.window is not None:
            self.window.report(error)
        else:
            log.error("Unexpected error in the desktop app", exc_info=error)


def run(
    theme: str = "",
    settings: ClientSettings | None = None,
    host: str | None = None,
    port: int | None = None,
    nick: str | None = None,
    cafile: Path | None = None,
) -> int:
    import qasync

    unusable = display.problem(os.environ)
    if unusable is not None:
        print(unusable, file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    settings = settings or ClientSettings()
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("Parley")
    # Dialogs come and go between windows (the connect dialog, then questions, then the main
    # window): closing one must not stop the loop the sign-in is still running on.
    app.setQuitOnLastWindowClosed(False)
    themes.apply(app, theme)
    given: dict[str, object] = {
        key: value for key, value in (("host", host), ("port", port), ("nick", nick)) if value
    }
    reports = Reports()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(reports.asyncio_error)
    sys.excepthook = reports.qt_error
    with loop:
        status: int = loop.run_until_complete(run_app(app, settings, given, reports, cafile))
        return status

"""``parley gui`` / ``python gui.py``: the desktop app.

Start-up, in order: the connect dialog (server, port and nickname remembered in
``gui.json``; the password never stored), the connection, the certificate (a first one is
shown for the user to accept into the same pin file the terminal client uses; a changed one is
refused with a warning that only closes the app), the login (saved token, else the password),
then the main window. Everything network runs on the Qt event loop through qasync.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QInputDialog,
    QLineEdit,
    QMessageBox,
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
from parley.gui.main_window import MainWindow
from parley.paths import default_config_dir
from parley.protocol.errors import ErrorCode, RequestRefused

EXIT_OK, EXIT_FAILED, EXIT_CERTIFICATE_CHANGED = 0, 1, 3
REMEMBERED = "gui.json"


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


def ask_to_trust(parent: QWidget | None, client: ChatClient) -> bool:
    answer = QMessageBox.question(
        parent,
        "New server",
        f"This is the first connection to {client.identity.server}.\n\n"
        f"Its certificate's SHA-256 fingerprint is:\n{client.identity.fingerprint}\n\n"
        "Compare it with the one the server printed when it started. Trust this server?",
    )
    return answer == QMessageBox.StandardButton.Yes


def warn_changed(parent: QWidget | None, changed: CertificateChanged) -> None:
    box = QMessageBox(
        QMessageBox.Icon.Critical, "Certificate changed", changed.explain(), parent=parent
    )
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    box.exec()


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


def apply_theme(app: QApplication, theme: str) -> None:
    """``dark`` or ``light`` forces a palette; anything else follows the system."""
    if theme not in ("dark", "light"):
        return
    app.setStyle("Fusion")
    palette = QPalette()
    if theme == "dark":
        colours = {
            QPalette.ColorRole.Window: "#1f2227",
            QPalette.ColorRole.WindowText: "#e6e6e6",
            QPalette.ColorRole.Base: "#16181c",
            QPalette.ColorRole.AlternateBase: "#23262b",
            QPalette.ColorRole.Text: "#e6e6e6",
            QPalette.ColorRole.Button: "#2a2e35",
            QPalette.ColorRole.ButtonText: "#e6e6e6",
            QPalette.ColorRole.Highlight: "#3d6fb6",
            QPalette.ColorRole.HighlightedText: "#ffffff",
            QPalette.ColorRole.PlaceholderText: "#8a8f98",
        }
    else:
        colours = {
            QPalette.ColorRole.Window: "#f3f3f3",
            QPalette.ColorRole.WindowText: "#1b1b1b",
            QPalette.ColorRole.Base: "#ffffff",
            QPalette.ColorRole.AlternateBase: "#f0f0f0",
            QPalette.ColorRole.Text: "#1b1b1b",
            QPalette.ColorRole.Button: "#e8e8e8",
            QPalette.ColorRole.ButtonText: "#1b1b1b",
            QPalette.ColorRole.Highlight: "#2f6fd0",
            QPalette.ColorRole.HighlightedText: "#ffffff",
            QPalette.ColorRole.PlaceholderText: "#6d6d6d",
        }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)


async def open_window(
    session: Session, nick: str, password: str, settings: ClientSettings, parent: QWidget | None
) -> MainWindow | int:
    """Connect, trust, log in; the main window, or an exit status."""
    try:
        client = await session.connect()
    except CertificateChanged as changed:
        warn_changed(parent, changed)
        return EXIT_CERTIFICATE_CHANGED
    except (OSError, ssl.SSLError, TimeoutError, ConnectionLost, RequestRefused) as exc:
        QMessageBox.warning(
            parent, "Parley", f"Cannot connect to {session.host}:{session.port}: {exc}"
        )
        return EXIT_FAILED
    if session.needs_acceptance(client):
        if not ask_to_trust(parent, client):
            await client.close()
            return EXIT_FAILED
        session.accept(client)
    chat = Chat(
        client,
        lambda text: None,
        _ask_password(parent),
        SessionStore(default_sessions_path()),
        ignores=IgnoreList(default_ignores_path()),
        downloads=settings.downloads(),
    )
    refused = await log_in(chat, nick, password)
    if refused is not None:
        QMessageBox.warning(parent, "Parley", refused)
        await client.close()
        return EXIT_FAILED
    window = MainWindow(chat, settings, session.connect)
    window.start()
    return window


def _ask_password(parent: QWidget | None) -> Callable[[str], Awaitable[str | None]]:
    async def ask(prompt: str) -> str | None:
        text, ok = QInputDialog.getText(parent, "Parley", prompt, QLineEdit.EchoMode.Password)
        return text if ok else None

    return ask


def run(theme: str = "", settings: ClientSettings | None = None) -> int:
    import qasync

    settings = settings or ClientSettings()
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("Parley")
    apply_theme(app, theme)
    config_dir = default_config_dir()
    dialog = ConnectDialog(load_remembered(config_dir))
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return EXIT_OK
    host, port, nick = dialog.host.text().strip(), dialog.port.value(), dialog.nick.text().strip()
    if dialog.remember.isChecked():
        save_remembered(config_dir, host, port, nick)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(host, port, config_dir)
    with loop:
        opened = loop.run_until_complete(
            open_window(session, nick, dialog.password.text(), settings, None)
        )
        if isinstance(opened, int):
            return opened
        opened.show()
        finished = asyncio.Event()
        opened.closed.connect(finished.set)
        loop.run_until_complete(finished.wait())
        loop.run_until_complete(opened.leave())
        return EXIT_FAILED if opened.gave_up else EXIT_OK

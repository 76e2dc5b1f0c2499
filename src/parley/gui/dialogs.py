"""The questions and warnings the desktop app shows, awaited instead of run in a nested loop.

Three rules, each the cause of a crash or a hole when broken:

- Every dialog has a parent (the main window or the connect dialog). The application does not
  quit when its last window closes (see :func:`parley.gui.app.run`), and a parented dialog
  stays above the window it belongs to.
- A dialog is opened with ``open()`` and awaited through a future resolved by its ``finished``
  signal. ``exec()`` would start a nested Qt loop inside a running asyncio task, where any other
  task waking up (the client's reader, for one) cannot be entered.
- Every text is plain: a peer's nickname, a topic or a server's reason with ``<img src=…>`` in it
  shows those characters and loads nothing.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QInputDialog, QLabel, QLineEdit, QMessageBox, QWidget

BUTTON_WIDTH, BUTTON_HEIGHT = 100, 30


async def shown(dialog: QDialog) -> int:
    """Open ``dialog`` (modal to its parent) and wait until it is closed; its result code."""
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not done.done():
            done.set_result(result)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await done
    finally:
        dialog.finished.disconnect(finished)


def message_box(
    parent: QWidget, icon: QMessageBox.Icon, title: str, text: str, detail: str = ""
) -> QMessageBox:
    """A message box whose texts are never read as markup."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    if detail:
        box.setInformativeText(detail)
        for label in box.findChildren(QLabel):
            label.setTextFormat(Qt.TextFormat.PlainText)
    return box


async def confirm(parent: QWidget, title: str, text: str, detail: str, yes: str) -> bool:
    """``yes`` or Cancel; True for ``yes``. Cancel is the default, so Enter alone never agrees."""
    box = message_box(parent, QMessageBox.Icon.Question, title, text, detail)
    agree = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    for button in (agree, cancel):
        # Easy targets, the same size whatever their label or icon.
        button.setMinimumSize(BUTTON_WIDTH, BUTTON_HEIGHT)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    await shown(box)
    return box.clickedButton() is agree


async def warn(parent: QWidget, title: str, text: str, detail: str = "") -> None:
    box = message_box(parent, QMessageBox.Icon.Warning, title, text, detail)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    await shown(box)


async def ask_secret(parent: QWidget, title: str, prompt: str) -> str | None:
    """A password, typed hidden; None when the user cancels."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(prompt)
    dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    for label in dialog.findChildren(QLabel):
        label.setTextFormat(Qt.TextFormat.PlainText)
    dialog.setMinimumWidth(360)
    accepted = await shown(dialog) == QDialog.DialogCode.Accepted
    return dialog.textValue() if accepted else None


async def choose(parent: QWidget, title: str, prompt: str, items: list[str]) -> str | None:
    """One of ``items`` (typed with completion or picked); None when the user cancels."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(prompt)
    dialog.setComboBoxItems(items)
    dialog.setComboBoxEditable(True)
    for label in dialog.findChildren(QLabel):
        label.setTextFormat(Qt.TextFormat.PlainText)
    accepted = await shown(dialog) == QDialog.DialogCode.Accepted
    return dialog.textValue() if accepted else None

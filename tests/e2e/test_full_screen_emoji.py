"""The full-screen client with emoji that take several code points (a skin tone, a family
joined by zero-width joiners, a flag): the member list's border, and the names in it, stay in
their columns on every row.

Read through two terminals: one that draws each grapheme cluster in the columns wcwidth gives
it, as current terminals do, and pyte as it is, which places each code point on its own (👍🏽
in four columns, as tmux 3.3 does, and drops what follows a zero-width joiner in the same
write) and so disagrees with the client about those widths.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pyte
import pytest
from processes import Process, start_server
from pty_screen import Terminal, spawn_client
from wcwidth import iter_graphemes, wcswidth

from support import logged_in

COLUMNS, ROWS = 120, 30
# Where the side pane is: the border, then its 22 columns.
SIDE_PANE = 22 + 1
THUMB, FAMILY, FLAG = "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷"


class CodePointScreen(pyte.Screen):
    """pyte as it is, read cell by cell: a cell whose wide character was partly drawn over
    holds "" (pyte's own reading fails on it).
    """

    @property
    def display(self) -> list[str]:
        # The cell after a wide one holds "", so joining the cells reads the row.
        return [
            "".join(self.buffer[y][x].data for x in range(self.columns)) for y in range(self.lines)
        ]


class ClusterScreen(CodePointScreen):
    """A VT100 screen that draws a cluster of several code points in the columns the whole
    cluster takes (wcwidth's width of it), in one cell.
    """

    def draw(self, data: str) -> None:
        for cluster in iter_graphemes(data):
            width = wcswidth(cluster)
            if len(cluster) == 1 or width not in (1, 2):
                super().draw(cluster)
                continue
            super().draw("x" if width == 1 else "\u3000")  # something of that width
            line = self.buffer[self.cursor.y]
            line[self.cursor.x - width] = line[self.cursor.x - width]._replace(data=cluster)


def _emulated(terminal: Terminal, screen: pyte.Screen) -> Terminal:
    terminal.screen = screen
    terminal.stream = pyte.ByteStream(terminal.screen)
    return terminal


def _side_pane(terminal: Terminal) -> list[str]:
    """The rows of the side pane, read from the columns where it should be."""
    screen = terminal.screen
    start = screen.columns - SIDE_PANE + 1
    return [
        "".join(screen.buffer[y][x].data for x in range(start, screen.columns)).rstrip()
        for y in range(screen.lines)
    ]


def _misplaced_borders(terminal: Terminal) -> list[int]:
    """Rows of the message pane whose border is not in its column."""
    screen = terminal.screen
    return [
        y
        for y in range(screen.cursor.y - 1)  # above the status bar
        if screen.buffer[y][screen.columns - SIDE_PANE].data != "│"
    ]


async def _resize(terminal: Terminal, columns: int) -> None:
    """A new width: prompt_toolkit draws every cell again, left to right."""
    terminal.screen.resize(ROWS, columns)
    terminal.child.setwinsize(ROWS, columns)
    await terminal.settle(0.5)


async def _redrawn(terminal: Terminal) -> None:
    """Wait for the redraw after a resize (slow on a busy machine): both members listed, every
    border in its column.
    """
    await terminal.await_true(
        lambda: {"Alice", "Bob"} <= set(_side_pane(terminal)) and not _misplaced_borders(terminal),
        "the member pane redrawn whole",
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Process, int]]:
    process, port = await start_server(tmp_path / "server")
    yield process, port
    if process.process.returncode is None:
        process.signal(signal.SIGTERM)
        await process.finish()


@pytest.mark.parametrize("clusters", [True, False], ids=["cluster-terminal", "code-points"])
async def test_emoji_clusters_keep_the_member_list_border_straight(
    tmp_path: Path, server: tuple[Process, int], clusters: bool
) -> None:
    _, port = server
    terminal = spawn_client(tmp_path / "alice", port, "--nick", "Alice", columns=COLUMNS, rows=ROWS)
    terminal = _emulated(terminal, (ClusterScreen if clusters else CodePointScreen)(COLUMNS, ROWS))
    bob = await logged_in(port, "Bob")
    try:
        await terminal.await_text("Members (2)")
        await bob.send("#general", f"thumbs {THUMB} family {FAMILY} flag {FLAG} end")
        await bob.send("#general", f"{FLAG}{FLAG}{FLAG} {THUMB * 5} {FAMILY * 3}")
        await bob.send("#general", f"long {' '.join([THUMB, FAMILY, FLAG] * 20)} tail")
        await terminal.await_text("end")
        await terminal.await_text("tail")
        await terminal.settle()
        assert _misplaced_borders(terminal) == []
        assert {"Alice", "Bob"} <= set(_side_pane(terminal))
        await _resize(terminal, 110)
        await terminal.await_text("tail")
        await _redrawn(terminal)
        if clusters:
            assert f"thumbs {THUMB} family {FAMILY} flag {FLAG} end" in terminal.text()

        # What the user types: the line, and the border above it, stay where they are.
        terminal.child.send(f"me too {THUMB}{FAMILY}{FLAG}")
        await terminal.await_text("[#general] me too")
        await terminal.settle()
        if clusters:
            assert terminal.cursor_line().endswith(f"me too {THUMB}{FAMILY}{FLAG}")
        start = len("[#general] me too ")
        assert terminal.screen.cursor.x == start + 6  # three clusters of two columns
        terminal.child.send("\r")
        await terminal.await_text("<Alice> me too")
        await terminal.settle()
        assert _misplaced_borders(terminal) == []
        await _resize(terminal, COLUMNS)
        await _redrawn(terminal)
        if clusters:
            assert f"<Alice> me too {THUMB}{FAMILY}{FLAG}" in terminal.text()

        terminal.child.send("/exit\r")
        assert await terminal.exit_status() == 0
    finally:
        terminal.stop()
        await bob.close()

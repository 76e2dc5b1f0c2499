"""One screen cell per grapheme cluster, checked on prompt_toolkit's own screen model: the
cells it would write, and where the border after them lands. These fail if prompt_toolkit
changes how it builds cells (the internals parley.client.tui.cells relies on).
"""

from __future__ import annotations

import io

import pytest
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point, Size
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import HSplit, VSplit, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.layout.screen import Screen, WritePosition

from parley.client.tui.cells import ClusterCells, ClusterOutput, cells, install

THUMB = "👍🏽"  # emoji and a skin-tone modifier
FAMILY = "👨\u200d👩\u200d👧"  # three emoji joined by zero-width joiners
FLAG = "🇫🇷"  # two regional indicators
HEART = "❤️"  # a narrow symbol made wide by VS16
CLUSTERS = [THUMB, FAMILY, FLAG, HEART, "e\u0301"]
PANE, SIDE = 40, 12
BORDER = "│"


def _render(
    pane: StyleAndTextTuples, side: StyleAndTextTuples, typed: str, rows: int = 6
) -> tuple[Screen, Window]:
    install()
    buffer = Buffer(document=Document(typed, len(typed)))
    field = Window(
        BufferControl(buffer, input_processors=[ClusterCells(), BeforeInput("[#general] ")]),
        height=1,
    )
    layout = HSplit(
        [
            VSplit(
                [
                    Window(FormattedTextControl(cells(pane)), width=PANE, wrap_lines=True),
                    Window(width=1, char=BORDER),
                    Window(FormattedTextControl(cells(side)), width=SIDE),
                ]
            ),
            field,
        ]
    )
    screen = Screen()
    layout.write_to_screen(
        screen, MouseHandlers(), WritePosition(0, 0, PANE + 1 + SIDE, rows), "", True, None
    )
    return screen, field


def _row(screen: Screen, y: int) -> list[tuple[int, str, int]]:
    """The cells of row ``y`` as the renderer walks them: column, text, width."""
    found, x = [], 0
    row = screen.data_buffer[y]
    while x < PANE + 1 + SIDE:
        char = row[x]
        found.append((x, char.char, char.width))
        x += char.width or 1
    return found


@pytest.mark.parametrize("cluster", CLUSTERS)
async def test_a_cluster_is_one_cell_and_the_border_stays_in_its_column(cluster: str) -> None:
    line = f"<Bob> {cluster}{cluster} ok {cluster}"
    screen, _ = _render([("class:nick", line)], [("", f"a{cluster}b\nplain")], "")
    width = 1 if cluster == "e\u0301" else 2
    walked = _row(screen, 0)
    pane = "".join(text for x, text, _ in walked if x < PANE)
    assert pane.rstrip() == line
    assert (6, cluster, width) in walked
    assert (6 + width, cluster, width) in walked
    assert (PANE, BORDER, 1) in walked
    assert (PANE + 1, "a", 1) in walked
    assert (PANE + 2, cluster, width) in walked
    assert (PANE + 2 + width, "b", 1) in walked
    # No lone modifier or joiner is left in the cell after the last cluster.
    after = 6 + 4 * width + 4
    assert screen.data_buffer[0][after].char == " "


async def test_a_wrapped_line_of_clusters_keeps_the_border() -> None:
    line = " ".join([THUMB, FAMILY, FLAG] * 8)
    screen, _ = _render([("", line)], [("", "side")], "")
    for y in range(5):
        assert screen.data_buffer[y][PANE].char == BORDER, y
    shown = [text for y in range(5) for x, text, _ in _row(screen, y) if x < PANE]
    # Two columns each: a cluster and its space take three of the row's 40.
    assert [text for text in shown if text.strip()] == line.split(" ")
    first = "".join(text for x, text, _ in _row(screen, 0) if x < PANE)
    assert first.rstrip() == " ".join(([THUMB, FAMILY, FLAG] * 8)[:13])  # 13 x 3 columns


async def test_the_input_line_puts_the_cursor_after_the_clusters() -> None:
    typed = f"{THUMB} {FAMILY}{FLAG}x"
    screen, field = _render([("", "pane")], [("", "side")], typed, rows=2)
    walked = _row(screen, 1)
    start = len("[#general] ")
    assert (start, THUMB, 2) in walked
    assert (start + 3, FAMILY, 2) in walked
    assert (start + 5, FLAG, 2) in walked
    assert (start + 7, "x", 1) in walked
    assert field.render_info is not None
    assert field.render_info.cursor_position == Point(x=start + 8, y=0)


async def test_plain_text_and_other_styles_are_left_alone() -> None:
    fragments: StyleAndTextTuples = [("class:a", "plain ascii"), ("class:b", "é ü 漢字")]
    assert cells(fragments) == fragments
    marked = cells([("class:a", f"x{THUMB}y")])
    assert [fragment[1] for fragment in marked] == ["x", "👍", "🏽", "y"]
    assert all(fragment[0].startswith("class:a") for fragment in marked)


def test_the_cursor_ends_a_cluster_where_the_screen_model_says() -> None:
    stdout = io.StringIO()
    output = ClusterOutput(stdout, lambda: Size(rows=24, columns=80))
    for text in [THUMB, "a", FAMILY, "plain é", "\x1b[31m", HEART]:
        output.write(text)
    output.flush()
    assert stdout.getvalue() == (
        f"\x1b7{THUMB}\x1b8\x1b[2Ca\x1b7{FAMILY}\x1b8\x1b[2Cplain é?[31m\x1b7{HEART}\x1b8\x1b[2C"
    )

"""How far the full-screen client's pane scrolls up: to the first line at the top, no further."""

from __future__ import annotations

from parley.client.tui.render import most_scroll
from parley.client.windows import Kind, Line, Style, Window


def _window(*texts: str) -> Window:
    window = Window(Kind.ROOM, "#dev", 100)
    for text in texts:
        window.lines.append(Line(0.0, text, Style.MESSAGE, sender="Bob"))
    return window


def test_a_window_whose_lines_fit_does_not_scroll() -> None:
    assert most_scroll(_window("one", "two", "three"), rows=20, time_format="%H:%M", width=80) == 0
    assert most_scroll(_window(), rows=20, time_format="%H:%M", width=80) == 0


def test_scrolling_stops_with_the_first_line_at_the_top() -> None:
    window = _window(*(f"line {n}" for n in range(30)))
    # 20 one-row lines fill the pane: the first is at the top 10 lines up from the end.
    assert most_scroll(window, rows=20, time_format="%H:%M", width=80) == 10


def test_long_lines_that_wrap_take_their_rows() -> None:
    window = _window("x" * 200, *(f"line {n}" for n in range(10)))
    # The first line takes 3 rows of 80 columns (stamp and sender included): 3 + 7 lines fill 10.
    assert most_scroll(window, rows=10, time_format="%H:%M", width=80) == 3

"""The window model: routing, unread counts, mentions, the new-messages divider."""

from __future__ import annotations

from parley.client.windows import Kind, Line, Style, Windows, mentions


def _message(text: str = "hi", *, history: bool = False, mention: bool = False) -> Line:
    return Line(0.0, text, Style.MESSAGE, sender="Bob", mention=mention, history=history)


def test_windows_open_once_per_conversation_whatever_the_case() -> None:
    windows = Windows()
    room = windows.open("#Dev")
    assert windows.open("#dev") is room
    assert windows.open("bob") is windows.open("BOB")
    assert [w.kind for w in windows] == [Kind.STATUS, Kind.ROOM, Kind.PRIVATE]
    assert windows.number(room) == 2


def test_lines_out_of_view_count_as_unread_and_mentions() -> None:
    windows = Windows()
    general, dev = windows.open("#general"), windows.open("#dev")
    windows.select(general)
    windows.add(dev, _message())
    windows.add(dev, _message("alice: look", mention=True))
    windows.add(dev, Line(0.0, "Carol has joined #dev", Style.EVENT))
    windows.add(general, _message())
    assert (dev.unread, dev.mentions, general.unread) == (2, 1, 0)
    assert [(n, w.name) for n, w in windows.with_unread()] == [(3, "#dev")]
    windows.select(dev)
    assert (dev.unread, dev.mentions) == (0, 0)


def test_ones_own_message_out_of_view_is_not_unread() -> None:
    """The echo of a line the user sent can arrive after they switched windows (a slow
    server, another device of theirs): it is theirs, so never unread and never a divider.
    """
    windows = Windows()
    general, bob = windows.open("#general"), windows.open("Bob")
    windows.select(general)
    windows.add(bob, Line(0.0, "yes?", Style.MESSAGE, sender="Alice", own=True))
    windows.add(bob, Line(0.0, "waves", Style.ACTION, sender="Alice", own=True))
    assert (bob.unread, bob.mentions, windows.with_unread()) == (0, 0, [])
    assert bob.divider_at is None


def test_the_divider_marks_the_first_line_not_seen_until_the_window_is_left() -> None:
    windows = Windows()
    general, dev = windows.open("#general"), windows.open("#dev")
    windows.select(dev)
    windows.add(dev, _message("seen"))
    windows.select(general)
    windows.add(dev, _message("new 1"))
    windows.add(dev, _message("new 2"))
    windows.select(dev)
    assert dev.divider_index() == 1
    assert dev.lines[1].text == "new 1"
    windows.select(general)  # read: the divider goes
    assert dev.divider_index() is None


def test_history_ends_with_a_divider_above_the_first_live_line() -> None:
    windows = Windows()
    dev = windows.open("#dev")
    windows.select(dev)
    windows.add(dev, _message("old", history=True))
    windows.add(dev, _message("live"))
    assert dev.divider_index() == 1


def test_speaking_right_after_the_history_puts_no_divider_above_ones_own_line() -> None:
    windows = Windows()
    dev = windows.open("#dev")
    windows.select(dev)
    windows.add(dev, _message("old", history=True))
    windows.add(dev, Line(0.0, "hello all", Style.MESSAGE, sender="Alice", own=True))
    windows.add(dev, _message("hi Alice"))
    assert dev.divider_index() is None


def test_the_divider_scrolls_out_with_its_line() -> None:
    windows = Windows(scrollback=100)
    dev = windows.open("#dev")
    windows.add(dev, _message("first unread"))  # out of view: status is current
    for n in range(150):
        windows.add(dev, _message(str(n)))
    assert len(dev.lines) == 100
    assert dev.divider_index() is None


def test_switching_wraps_around_and_the_status_window_stays_open() -> None:
    windows = Windows()
    a, b = windows.open("#a"), windows.open("#b")
    windows.step(1)
    assert windows.current is a
    windows.step(-1)
    windows.step(-1)
    assert windows.current is b
    assert not windows.close(windows.status)
    assert windows.close(b)
    assert windows.current is a
    assert not windows.select_number(9)
    assert windows.select_number(1)
    assert windows.current is windows.status


def test_closing_a_window_before_the_current_one_keeps_the_view() -> None:
    windows = Windows()
    a, b = windows.open("#a"), windows.open("#b")
    windows.select(b)
    assert windows.close(a)
    assert windows.current is b


def test_mentions_are_whole_words_in_any_case() -> None:
    assert mentions("alice: look", "Alice")
    assert mentions("ping ALICE!", "alice")
    assert not mentions("malice aforethought", "alice")
    assert not mentions("alice-bot said", "alice")
    assert not mentions("anything", "")
    assert mentions("a[b] here", "a[b]")  # regex characters in a nickname are literal

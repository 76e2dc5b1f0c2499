"""Tab completion: commands, rooms, nicknames (with ': ' at the start of a line)."""

from __future__ import annotations

from parley.client.tui.completion import candidates

COMMANDS = ["join", "part", "msg", "me", "query", "quit"]
ROOMS = ["#general", "#dev", "#Design"]
NICKS = ["bob", "Bobby", "carol"]


def test_a_nickname_at_the_start_of_a_line_is_addressed() -> None:
    assert candidates("bo", COMMANDS, ROOMS, NICKS) == ("bo", ["bob: ", "Bobby: "])


def test_a_nickname_inside_a_line_is_followed_by_a_space() -> None:
    assert candidates("thanks CA", COMMANDS, ROOMS, NICKS) == ("CA", ["carol "])


def test_commands_complete_at_the_start_of_a_line_only() -> None:
    assert candidates("/q", COMMANDS, ROOMS, NICKS) == ("/q", ["/query ", "/quit "])
    assert candidates("/ME", COMMANDS, ROOMS, NICKS) == ("/ME", ["/me "])
    assert candidates("say /q", COMMANDS, ROOMS, NICKS) == ("/q", [])


def test_rooms_complete_anywhere_and_after_room_commands() -> None:
    assert candidates("see #d", COMMANDS, ROOMS, NICKS) == ("#d", ["#dev", "#Design"])
    assert candidates("/join #g", COMMANDS, ROOMS, NICKS) == ("#g", ["#general"])
    assert candidates("/part ", COMMANDS, ROOMS, NICKS)[1] == ROOMS


def test_a_nickname_after_a_user_command_gets_a_space_not_a_colon() -> None:
    assert candidates("/query ca", COMMANDS, ROOMS, NICKS) == ("ca", ["carol "])


def test_nothing_to_complete_offers_nothing() -> None:
    assert candidates("", COMMANDS, ROOMS, NICKS) == ("", [])
    assert candidates("hello ", COMMANDS, ROOMS, NICKS) == ("", [])
    assert candidates("zz", COMMANDS, ROOMS, NICKS) == ("zz", [])


def test_duplicates_are_offered_once() -> None:
    assert candidates("b", COMMANDS, ROOMS, ["bob", "BOB", "bob"]) == ("b", ["bob: "])

"""The commands added with the full-screen client, through the line-by-line client over pipes
(the same handlers serve both): /me, /query, /away, /whois, /ignore, /help COMMAND, and what
the window commands say where there are no windows.
"""

from __future__ import annotations

from processes import Lab


async def test_actions_private_conversations_and_away(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    bob = await lab.guest("Bob")

    alice.type("/me waves at everyone")
    await bob.expect(r"^\* Alice waves at everyone$")
    alice.type("/me")
    await alice.expect(r"^Usage: /me ACTION$")

    alice.type("/query bob")
    await alice.expect(r"^Lines you type now go to bob \(private\)\.$")
    alice.type("just between us")
    await bob.expect(r"^\(private\) Alice: just between us$")
    alice.type("/me whispers")
    await bob.expect(r"^\(private\) \* Alice whispers$")
    alice.type("/query Alice")
    await alice.expect(r"^\*\*\* That is you\.$")

    bob.type("/away at lunch, back at 2")
    await bob.expect(r"^You are marked away: at lunch, back at 2$")
    alice.type("are you there?")
    await alice.expect(r"^bob is away: at lunch, back at 2$")
    alice.type("/whois BOB")
    await alice.expect(r"^Bob is a guest, online since \d{4}-\d\d-\d\d \d\d:\d\d\.$")
    await alice.expect(r"^Bob is in #general\.$")
    await alice.expect(r"^Bob is away: at lunch, back at 2$")
    bob.type("/away")
    await bob.expect(r"^You are no longer away\.$")
    bob.type("/away " + "z" * 10_000)  # what the server refuses is said; the chat goes on
    await bob.expect(r"^\*\*\* ")

    alice.type("/close")  # ends the private conversation: lines go to the room again
    await alice.expect(r"^Lines you type now go to #general\.$")
    alice.type("to the room")
    await bob.expect(r"^Alice: to the room$")
    alice.type("/whois nobody-here")
    await alice.expect(r"^\*\*\* ")
    alice.type("/whois")
    await alice.expect(r"^Usage: /whois USER$")


async def test_ignore_over_pipes_and_the_window_commands(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    bob = await lab.guest("Bob")
    carol = await lab.guest("Carol")

    alice.type("/ignore Bob")
    await alice.expect(r"^Ignoring Bob; /unignore Bob to see them again\.$")
    alice.type("/ignore alice")
    await alice.expect(r"^\*\*\* You cannot ignore yourself\.$")
    bob.type("hidden from alice")
    await carol.expect(r"^Bob: hidden from alice$")  # so it reaches Alice before Carol's line
    carol.type("seen by alice")
    await alice.expect(r"^Carol: seen by alice$")
    alice.type("/unignore bob")
    await alice.expect(r"^bob is no longer ignored\.$")
    bob.type("shown again")
    await alice.expect(r"^Bob: shown again$")

    alice.type("/win 2")
    await alice.expect(r"^\*\*\* Windows are in the full-screen client")
    alice.type("/clear")
    await alice.expect(r"^\*\*\* Windows are in the full-screen client")
    alice.type("/help away")
    await alice.expect(r"^/away \[TEXT\]: say you are away \(alone: you are back\)\.$")
    alice.type("/help nosuch")
    await alice.expect(r"^No command /nosuch\.$")
    alice.type("/qeury bob")
    await alice.expect(r"^Unknown command /qeury\. Did you mean /query\? Type /help")
    alice.end_input()
    status, output, _ = await alice.finish()
    assert status == 0
    assert "hidden from alice" not in output


async def test_a_note_to_oneself_is_shown_and_an_offline_account_is_said_to_be_offline(
    lab: Lab,
) -> None:
    await lab.start_server()
    bob = await lab.client("bob", "--nick", "Bob")
    await bob.expect("Welcome to the chat!$")
    bob.type("/register")
    await bob.expect("Password: $")
    bob.type("tulip anchor 9 quietly")
    await bob.expect("Password again: $")
    bob.type("tulip anchor 9 quietly")
    await bob.expect(r"^Registered Bob\.")
    bob.type("/exit")
    assert (await bob.finish())[0] == 0

    alice = await lab.guest("Alice")
    alice.type("/pm alice remember the milk")
    await alice.expect(r"^\(private\) Alice: remember the milk$")
    alice.type("/pm BOB see you tomorrow")
    await alice.expect(r"^BOB is offline: they get it when they next log in\.$")
    alice.type("/pm nobody-at-all hello")  # neither online nor an account: refused, as before
    await alice.expect(r"^\*\*\* No user named nobody-at-all is online\.$")

    bob = await lab.client("bob", "--nick", "Bob")
    await bob.expect(r".*\(private\) Alice: see you tomorrow$")


async def test_history_lines_follow_the_timestamp_format_setting(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    alice.type("said before bob came")
    alice.type("/whois alice")  # answered once the line before it is stored
    await alice.expect(r"^Alice is a guest")
    settings = lab.home("bob") / "client.toml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('timestamp_format = "%H.%M.%S"\n')
    bob = await lab.client("bob", "--nick", "Bob", "--config", str(settings))
    await bob.expect(r"^\[\d\d\.\d\d\.\d\d\] Alice: said before bob came$")

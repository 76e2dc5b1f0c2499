"""Rooms, history, private messages kept for the offline and moderation, through the real
client over pipes against the real server.
"""

from __future__ import annotations

from pathlib import Path

from processes import Lab

from support import raw_user

PASSWORD = "correct horse battery"
# History lines start with the time they were sent.
STAMP = r"\[(\d{4}-\d\d-\d\d )?\d\d:\d\d\] "


async def test_two_users_in_a_room(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    bob = await lab.guest("Bob")
    await alice.expect("Bob has joined the chat!$")

    alice.type("/join #dev")
    await alice.expect(r"You joined #dev \(1 member\)\. No topic is set\.$")
    await alice.expect(r"Lines you type now go to #dev\.$")
    bob.type("/join #Dev")
    await bob.expect(r"You joined #dev \(2 members\)\. No topic is set\.$")
    await alice.expect(r"\[#dev\] Bob has joined\.$")

    bob.type("hello dev")
    await alice.expect(r"\[#dev\] Bob: hello dev$")
    alice.type("/topic Release on Friday")  # the room's creator runs it
    await alice.expect(r"\[#dev\] Alice set the topic: Release on Friday$")
    await bob.expect(r"\[#dev\] Alice set the topic: Release on Friday$")
    bob.type("/topic")
    await bob.expect(r"#dev \(2 members\)\. Topic: Release on Friday \(set by Alice\)$")
    bob.type("/topic #dev Mine now")
    await bob.expect(r"\*\*\* Only the room's operators set its topic\.$")
    bob.type("/who")
    await bob.expect(r"In #dev \(2\): Alice, Bob$")
    bob.type("/rooms")
    await bob.expect(r"Rooms \(2\):$")
    await bob.expect(r"  #dev      2 members  Release on Friday$")
    await bob.expect(r"  #general  2 members$")

    bob.type("/msg #general hi all")
    await alice.expect("Bob: hi all$")
    bob.type("/msg alice psst")
    await alice.expect(r"\(private\) Bob: psst$")
    bob.type("/part")
    await bob.expect(r"You left #dev\.$")
    await bob.expect(r"Lines you type now go to #general\.$")
    await alice.expect(r"\[#dev\] Bob has left\.$")
    bob.type("back in general")
    await alice.expect("Bob: back in general$")

    # Wrong arguments get the usage, and no request.
    for line, usage in [
        ("/join dev", r"/join #room"),
        ("/join", r"/join #room"),
        ("/part #", r"/part \[#room\]"),
        ("/who #no room", r"/who \[#room\]"),
        ("/msg #dev", r"/msg #room\|USER MESSAGE"),
        ("/history many", r"/history \[N\]"),
        ("/history 0", r"/history \[N\]"),
        ("/kick #dev", r"/kick #room USER \[REASON\]"),
        ("/ban #dev Alice 0m", r"/ban #room USER \[DURATION\] \[REASON\]"),
        ("/ban #dev Alice 30 spam", r"/ban #room USER \[DURATION\] \[REASON\]"),
        ("/mute dev Alice", r"/mute #room USER \[DURATION\] \[REASON\]"),
        ("/unban #dev Alice now", r"/unban #room USER$"),
        ("/unmute #dev", r"/unmute #room USER$"),
        ("/rooms all", r"/rooms \[#after\]$"),
        ("/op #dev", r"/op #room USER$"),
    ]:
        bob.type(line)
        await bob.expect(f"Usage: {usage}")
    bob.type("/help")
    await bob.expect(r"  /ban #room USER \[DURATION\] \[REASON\] +keep USER out; DURATION like 30m")
    await bob.expect(r"Other lines go to the current room")

    for client in (alice, bob):
        client.type("/exit")
        status, output, _ = await client.finish()
        assert status == 0
        assert "Traceback" not in output
    # The line client has no windows: /help does not offer their commands and keys.
    assert "show window N" not in output and "empty the window" not in output


async def test_history_after_joining_then_paging_back(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("flood_burst_requests = 1000\nflood_debt_requests = 2000\n")
    port = await lab.start_server("--config", str(config))
    writer = await raw_user(port, "Writer")
    await writer.request("join", room="#log")
    for n in range(1, 61):
        reply = await writer.request("send", to="#log", text=f"line {n}", msg_id=f"l{n}")
        assert reply["type"] == "sent", reply

    alice = await lab.guest("Alice")
    alice.type("/join #log")
    await alice.expect(r"You joined #log \(2 members\)")
    # The room's last 50 messages, marked as history, then live ones as they come.
    for n in range(11, 61):
        await alice.expect(f"{STAMP}\\[#log\\] Writer: line {n}$")
    await writer.request("send", to="#log", text="live one", msg_id="live")
    await alice.expect(r"\[#log\] Writer: live one$")

    alice.type("/history 5")
    for n in range(6, 11):
        await alice.expect(f"{STAMP}\\[#log\\] Writer: line {n}$")
    alice.type("/history")
    for n in range(1, 6):
        await alice.expect(f"{STAMP}\\[#log\\] Writer: line {n}$")
    await alice.expect(r"The history of #log starts here\.$")
    alice.type("/history")
    await alice.expect(r"No earlier messages in #log: its history starts with the first one shown")
    alice.type("/join #empty")
    await alice.expect(r"You joined #empty")
    alice.type("/join #empty")
    await alice.expect(r"You are in #empty \(1 member\)")
    alice.type("/history")
    await alice.expect(r"No messages in #empty yet\.$")
    alice.type("/exit")
    status, output, _ = await alice.finish()
    assert status == 0
    assert output.count("Writer: line 11") == 1  # each message once
    await writer.close()


async def test_a_private_message_waits_for_an_offline_account(lab: Lab) -> None:
    await lab.start_server()
    bob = await lab.guest("Bob")
    bob.type("/register")
    bob.type(PASSWORD)
    bob.type(PASSWORD)
    await bob.expect("Registered Bob")
    bob.type("/exit")
    assert (await bob.finish())[0] == 0

    alice = await lab.guest("Alice")
    alice.type("/pm Bob see you tomorrow")
    alice.type("/pm Zed anyone?")
    await alice.expect(r"\*\*\* No user named Zed is online\.$")
    alice.type("/join #dev")
    await alice.expect("Lines you type now go to #dev")

    bob = await lab.client("bob", "--nick", "Bob")  # the saved login: no password
    await bob.expect("Welcome to the chat!$")
    await bob.expect(f"{STAMP}\\(private\\) Alice: see you tomorrow$")
    bob.type("/join #dev")
    await bob.expect(r"You joined #dev")
    alice.type("once bob is here")
    await bob.expect(r"\[#dev\] Alice: once bob is here$")
    bob.type("/exit")
    assert (await bob.finish())[0] == 0

    # Back in the room he was in, told what came while he was away.
    alice.type("while bob is away")
    alice.type("/who")  # answered only once the line before is stored
    await alice.expect(r"In #dev \(1\): Alice$")
    bob = await lab.client("bob", "--nick", "Bob")
    await bob.expect("Welcome to the chat!$")
    await bob.expect(r"Your rooms: #general, #dev\.$")
    await bob.expect(r"Unread \(1\): #dev 1$")
    bob.type("/exit")
    _, output, _ = await bob.finish()
    assert "see you tomorrow" not in output  # delivered once
    alice.type("/exit")
    assert (await alice.finish())[0] == 0


async def test_a_room_operator_kicks_bans_and_mutes(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    bob = await lab.guest("Bob")
    alice.type("/join #ops")
    await alice.expect("Lines you type now go to #ops")
    bob.type("/join #ops")
    await bob.expect("Lines you type now go to #ops")
    await alice.expect(r"\[#ops\] Bob has joined\.$")

    alice.type("/kick #ops Bob flooding the room")
    await alice.expect_all(
        r"Kicked Bob from #ops\.$", r"\[#ops\] Bob was kicked by Alice: flooding the room$"
    )
    await bob.expect(r"\[#ops\] You were kicked by Alice: flooding the room$")
    await bob.expect(r"Lines you type now go to #general\.$")
    bob.type("/kick #ops Alice")
    await bob.expect(r"\*\*\* You are not an operator of #ops\.$")

    alice.type("/ban #ops Bob 1h spam")
    await alice.expect(r"Banned Bob from #ops for 1h\.$")
    bob.type("/join #ops")
    await bob.expect(r"\*\*\* You are banned from #ops\.$")
    alice.type("/unban #ops Bob")
    await alice.expect(r"Bob may join #ops again\.$")
    await bob.expect(r"\*\*\* You may join #ops again \(Alice lifted the ban\)\.$")
    bob.type("/join #ops")
    await bob.expect("Lines you type now go to #ops")

    alice.type("/mute #ops Bob 10m calm down")
    await alice.expect(r"Muted Bob in #ops for 10m\.$")
    await bob.expect(r"\*\*\* You were muted in #ops by Alice\. Reason: calm down$")
    bob.type("can I speak?")
    await bob.expect(r"\*\*\* You are muted in #ops\.$")
    alice.type("/unmute #ops Bob")
    await bob.expect(r"\*\*\* You may speak in #ops again \(Alice lifted the mute\)\.$")
    bob.type("thanks")
    await alice.expect(r"\[#ops\] Bob: thanks$")
    alice.type("/exit")
    _, output, _ = await alice.finish()
    assert "can I speak?" not in output
    bob.type("/exit")
    assert (await bob.finish())[0] == 0

"""What a new user of the line client runs into in the first hour, through the real client over
pipes against the real server.
"""

from __future__ import annotations

from processes import Lab

from support import raw_user

PASSWORD = "correct horse battery"
# History lines start with the time they were sent.
STAMP = r"\[(\d{4}-\d\d-\d\d )?\d\d:\d\d\] "


async def test_a_line_past_the_frame_limit_is_refused_here_and_the_chat_goes_on(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    bob = await lab.guest("Bob")
    alice.type("x" * 70_000)
    await alice.expect(
        r"^\*\*\* Not sent: a message is at most 4,000 characters, and this one has 70,000\.$"
    )
    alice.type("y" * 4_001)
    await alice.expect(r"^\*\*\* Not sent: a message is at most 4,000 characters, and this one ")
    alice.type("/topic " + "z" * 70_000)
    await alice.expect(r"^\*\*\* Not sent: that is too long \([\d,]+ bytes; the most is 64 KiB\)")
    alice.type("still here")
    await bob.expect(r".*Alice: still here$")
    alice.type("/exit")
    status, _, _ = await alice.finish()
    assert status == 0
    assert "xxxx" not in "\n".join(bob.lines)


async def test_leaving_the_last_room_does_not_claim_lines_still_go_there(lab: Lab) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    alice.type("/part")
    await alice.expect(r"^You left #general\.$")
    await alice.expect(r"^You are in no room now: /join #room to chat again\.$")
    alice.type("/join #dev")
    await alice.expect(r"^Lines you type now go to #dev\.$")
    alice.type("/exit")
    status, out, _ = await alice.finish()
    assert status == 0
    assert "Lines you type now go to #general" not in out


async def test_the_rooms_joined_at_login_show_their_history_with_the_unread_divider(
    lab: Lab,
) -> None:
    port = await lab.start_server()
    bob = await raw_user(port, "Bob")
    assert (await bob.request("register", password=PASSWORD))["type"] == "ok"
    writer = await raw_user(port, "Writer")
    for n in range(1, 4):
        sent = await writer.request("send", to="#general", text=f"m{n}", msg_id=f"m{n}")
        assert sent["type"] == "sent", sent
    # Bob has read up to m3, then goes.
    assert (await bob.request("read", to="#general", seq=sent["seq"]))["type"] == "ok"
    await bob.close()
    for n in range(4, 6):
        await writer.request("send", to="#general", text=f"m{n}", msg_id=f"m{n}")

    # A guest sees the room's recent messages, marked with their time, and no divider.
    guest = await lab.guest("Guest")
    for n in range(1, 6):
        await guest.expect(rf"^{STAMP}.*Writer: m{n}$")

    client = await lab.client("bob", "--nick", "Bob")
    await client.expect("Password: $")
    client.type(PASSWORD)
    await client.expect("Welcome to the chat!$")
    for n in range(1, 4):
        await client.expect(rf"^{STAMP}.*Writer: m{n}$")
    await client.expect(r"^--- new messages ---$")
    for n in range(4, 6):
        await client.expect(rf"^{STAMP}.*Writer: m{n}$")
    await writer.request("send", to="#general", text="live", msg_id="live")
    await client.expect(r"^.*Writer: live$")
    client.type("/exit")
    status, out, _ = await client.finish()
    assert status == 0
    assert out.count("--- new messages ---") == 1
    assert out.count("Writer: m1") == 1
    guest.type("/exit")
    _, seen, _ = await guest.finish()
    assert "--- new messages ---" not in seen
    await writer.close()

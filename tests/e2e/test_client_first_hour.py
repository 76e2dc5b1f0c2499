"""What a new user of the line client runs into in the first hour, through the real client over
pipes against the real server.
"""

from __future__ import annotations

from processes import Lab


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

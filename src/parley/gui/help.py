"""``/help`` in the desktop app: the commands as a list (one per line, a bullet, the usage,
what it does), then the desktop's own keys. The terminal client's help lists its keys (Alt+N,
F-keys); these are the ones this window binds.
"""

from __future__ import annotations

from parley.client.commands import COMMANDS

# Where the shared summary speaks of the terminal, the desktop's own words.
DESKTOP_SUMMARIES = {
    "me": "say what you do: /me waves shows “* Alice waves” (with your name)",
    "win": "show the Nth conversation of the sidebar (also Ctrl+1 … Ctrl+9)",
}

KEYS = (
    ("Ctrl+K", "jump to a conversation by name"),
    ("Ctrl+1 … Ctrl+9", "the Nth conversation in the sidebar"),
    ("Ctrl+PgUp / Ctrl+PgDn", "the previous / next conversation"),
    ("PgUp / PgDn", "scroll the messages"),
    ("Ctrl+End", "jump to the latest message"),
    ("Tab", "complete a nickname, a room, a /command or an :emoji:"),
    ("Up / Down", "the lines you sent before"),
    ("Ctrl+E", "the emoji picker"),
    ("F6", "move between the sidebar, the messages, the input and the members"),
    ("Escape", "back to the input line"),
    ("Ctrl+Q", "quit"),
)


def lines() -> list[str]:
    """The help, a line each: the caller shows them as a list."""
    entries = [entry for name, entry in COMMANDS.items() if name == entry.name]
    shown = ["Commands:"]
    for entry in sorted(entries, key=lambda e: e.name):
        summary = DESKTOP_SUMMARIES.get(entry.name, entry.summary)
        also = f" (or /{', /'.join(entry.aliases)})" if entry.aliases else ""
        shown.append(f"• {entry.usage} — {summary}{also}")
    shown.append("Keys:")
    shown.extend(f"• {keys} — {what}" for keys, what in KEYS)
    shown.append("Other lines go to the conversation in view; start one with // to send a /.")
    return shown

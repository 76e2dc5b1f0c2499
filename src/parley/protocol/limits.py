"""Limits of the wire protocol, enforced by the parser before anything is buffered or stored.

Each number is part of the protocol (docs/protocol.md) and says why it is what it is.
"""

PROTOCOL_VERSION = 1
# The chat port a server listens on unless its settings name another.
DEFAULT_PORT = 7976
SUPPORTED_VERSIONS = frozenset({1})

# 64 KiB: a whole chat line in the worst UTF-8 encoding (4,000 characters x 4 bytes, JSON-escaped
# as \uXXXX at most 6 bytes per character = 24 KB) fits with room for the envelope, while a peer
# can never make the server hold more than this per connection for an unfinished frame.
MAX_CLIENT_FRAME_BYTES = 64 * 1024

# Server-to-client frames may be larger (the user list reply), but still bounded so that a
# hostile server cannot make a client buffer without end.
MAX_SERVER_FRAME_BYTES = 1024 * 1024

# About a screenful of text; longer pastes belong in file sharing.
MAX_TEXT_CHARS = 4000

# Nicknames: short enough for a status bar and an aligned message column.
MAX_NICK_CHARS = 32

# A client message id is an opaque token chosen by the client (a UUID is 36 characters).
MAX_MSG_ID_CHARS = 64

# Free-form client name sent in the hello, for logs only.
MAX_CLIENT_NAME_CHARS = 64

# The /list reply names at most this many users (about 34 KB), and says how many there are.
MAX_LISTED_USERS = 1000

# Passwords: long passphrases welcome; the cap stops a client making the server hash megabytes.
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256

# A session token is 43 URL-safe characters (32 random bytes); room to grow.
MAX_TOKEN_CHARS = 128

# Room names: '#' and up to 49 more characters, like nicknames short enough for a status bar.
MAX_ROOM_CHARS = 50

# A topic is a line, shorter than a message.
MAX_TOPIC_CHARS = 500

# Reasons given for a kick, ban or mute.
MAX_REASON_CHARS = 300

# An away message is a short line shown next to a nickname.
MAX_AWAY_CHARS = 200

# One history page; the reply is also cut to fit MAX_SERVER_FRAME_BYTES.
MAX_HISTORY_MESSAGES = 200

# Rooms one user may be in at once: every room costs the server a little per member.
MAX_ROOMS_PER_USER = 100

# A ``rooms`` page names at most this many rooms (asked for with ``limit``), and the server
# cuts a page further to stay far below the frame and slow-reader limits (256 KiB).
MAX_LISTED_ROOMS = 1000
# The page size when a client does not say: a screenful or two.
ROOMS_PAGE = 100

# An ``unread`` reply lists at most this many conversations (about 150 KB at most), and says
# when there are more: every guest who writes to an account starts a conversation of its own.
MAX_LISTED_UNREAD = 500

# A shared file's name as the server keeps it (after cleaning), in characters.
MAX_FILE_NAME_CHARS = 255
# Files in one ``files`` reply (each at most about 1.6 KB: a 255-character name of 4-byte
# characters, nick, room, digest).
MAX_LISTED_FILES = 200
# The ``after`` of a ``files`` or ``unread`` page, as the server gave it in ``next``.
MAX_CURSOR_CHARS = 200
# Every list reply at its largest page (MAX_LISTED_* entries of the longest names) stays under
# this: a quarter of MAX_SERVER_FRAME_BYTES and of the default slow-reader limit, so that no
# reply can cut off the client that asked for it.
MAX_LIST_REPLY_BYTES = 256 * 1024

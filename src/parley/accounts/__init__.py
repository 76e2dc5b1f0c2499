"""Account security: password hashing, login throttling, session tokens, the first admin."""

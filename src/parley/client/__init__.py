"""The Parley client: one asyncio core (parley.client.core) under every front end."""

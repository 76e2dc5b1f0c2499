"""The Parley server: a thin asyncio layer around the pure protocol, and the hub that fans out."""

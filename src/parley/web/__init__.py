"""The built web client (see ``web/`` for its sources), served by the web listener."""

"""Parley: a secure, self-hosted chat system."""

__version__ = "0.1.0"

"""Koubei (口碑): reputation and complaint monitoring for a consumer-lending app."""

__version__ = "0.1.0"

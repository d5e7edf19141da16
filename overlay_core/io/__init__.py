"""Thin asyncio adapters that execute the sans-IO node's effects: sockets, TCP, the daemon."""

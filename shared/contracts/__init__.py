"""Frozen pydantic messages exchanged between services: commands, replies, events."""

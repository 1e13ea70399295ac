"""Helpers for code on the event loop: natural batching of calls."""

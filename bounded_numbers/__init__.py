"""Bounded parsing of every number anyone can send, and the fields built on it."""

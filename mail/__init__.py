"""Outgoing mail: the emails the project sends itself and the embedded default's backend."""

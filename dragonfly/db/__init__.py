"""Database backends of our own (see dragonfly/db/postgresql/base.py)."""

"""Database backends of our own (see db_backends/postgresql/base.py)."""

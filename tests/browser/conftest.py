"""The browser tests drive the e2e suite's live servers (tests/e2e/conftest.py).

Imported here, once for the whole directory: a session fixture imported into each test module is a
fixture of that module, so every module used to start (and keep until the session ended) its own
two Daphne processes, and their connection pools ran PostgreSQL out of connections.
"""

from tests.e2e.conftest import e2e_sim, servers, world  # noqa: F401

"""Django's PostgreSQL backend with its psycopg pool, handing out only live connections, at once.

A pooled connection can be dead while it idles (PostgreSQL restarted or terminated it, an idle
timeout, a proxy's cut). psycopg_pool's own `check` catches that, but after each failed check it
sleeps with backoff (1, 2, 4 s ...) before trying the next connection, so after a restart a
request waits seconds per dead connection in the pool. Here the pool checks nothing; every
connection it hands out is pinged once (one round trip, as CONN_HEALTH_CHECKS costs without a
pool), and a dead one goes straight back (the pool discards a broken connection and opens a new
one on demand) while the next is taken without waiting. docs/connections.md.
"""

from __future__ import annotations

import psycopg
from django.db.backends.postgresql import base


def _alive(connection: psycopg.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        # Every connection the pool holds may be dead (a restart): try each once, then a new one.
        for _ in range(pool.max_size):
            connection = super().get_new_connection(conn_params)
            if _alive(connection):
                return connection
            pool.putconn(connection)
        return super().get_new_connection(conn_params)

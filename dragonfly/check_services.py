"""Stop `make test` early, with instructions, when PostgreSQL or Redis is not reachable.

The suite never falls back to SQLite: money tests need PostgreSQL's real locking and commits.
"""

import sys
from urllib.parse import urlsplit

import psycopg
import redis


def _how_to_start(service: str, url: str) -> str:
    port = urlsplit(url).port
    if service == "postgres":
        return "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start" + (
            f"  (and make it listen on port {port})" if port and port != 5432 else ""
        )
    return f'redis-server --daemonize yes --bind 127.0.0.1 --port {port or 6379} --save "" --appendonly no'


def main(database_url: str, redis_url: str) -> int:
    problems = []
    try:
        with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3):
            pass
    except psycopg.Error as exc:
        problems.append(
            f"PostgreSQL at {database_url} is not reachable ({exc}).\n  Start it: {_how_to_start('postgres', database_url)}"
        )
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(
            f"Redis at {redis_url} is not reachable ({exc}).\n  Start it: {_how_to_start('redis', redis_url)}"
        )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("Set TEST_DATABASE_URL / TEST_REDIS_URL to use other servers.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

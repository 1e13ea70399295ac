"""`make test` stops with instructions when PostgreSQL or Redis cannot be reached."""

from django.conf import settings

from dragonfly.check_services import main


def test_it_stops_and_says_how_to_start_both(capsys):
    code = main("postgres://postgres@127.0.0.1:5999/dragonfly", "redis://127.0.0.1:6999/2")
    err = capsys.readouterr().err
    assert code == 1
    assert "PostgreSQL at postgres://postgres@127.0.0.1:5999/dragonfly is not reachable" in err
    assert "pg_ctlcluster" in err
    assert "listen on port 5999" in err
    assert "Redis at redis://127.0.0.1:6999/2 is not reachable" in err
    assert "redis-server --daemonize yes --bind 127.0.0.1 --port 6999" in err


def test_it_passes_when_both_answer(capsys):
    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    assert main(url, settings.REDIS_URL) == 0
    assert capsys.readouterr().err == ""

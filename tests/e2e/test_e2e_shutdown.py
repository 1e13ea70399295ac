"""Stopping a server (SIGTERM, as Docker and `make run` do) with a stream in flight: the request is
settled before the process exits, and the gateway's pools close cleanly (nothing left unclosed)."""

import signal

import pytest

from tests.e2e.conftest import Server, database_url

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MODEL = "deepseek/deepseek-chat"


def test_a_stopped_server_settles_its_stream_and_closes_its_pools(world):
    import os

    with world.blocker.unblock():
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DRAGONFLY_ROUTING_REFRESH_SECONDS": "1",
        }
    server = Server(env)
    try:
        buyer = world.buyer()
        world.listing(key="sim-e2e-shutdown?tps=20&tokens=200")  # a ten-second stream
        world.routable(MODEL, 1, server=server)
        client = world.client(buyer.key)
        client.base_url = server.url + "/v1"
        stream = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me a long story"}], stream=True
        )
        request_id = stream.headers["x-df-market-request-id"]
        chunks = stream.parse()
        next(iter(chunks))  # content is flowing
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(20) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.log.close()
    record = world.usage(request_id, wait=1.0)
    assert record is not None and record.outcome == "client_disconnected"
    assert 0 < record.output_units < 200  # what was delivered before the stop
    assert world.wallet(buyer)["held_nusd"] == 0
    with open(server.log.name) as handle:
        log = handle.read()
    assert "Unclosed" not in log, log[-2000:]

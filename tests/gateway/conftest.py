"""Gateway fixtures: the simulator in a thread, the catalogue pointed at it, an in-process client."""

import httpx
import pytest

from simulator.testing import SimulatorThread
from tests.gateway.factories import market_make


@pytest.fixture(scope="session")
def sim():
    with SimulatorThread() as running:
        yield running


@pytest.fixture
def market(sim, transactional_db):
    sim.app.registry.reset()
    market_make(sim.url)
    return sim


@pytest.fixture
async def client():
    from gateway import background
    from gateway.asgi import application

    async def settled(scope, receive, send):
        """The app, then its request's settlement landed (it lands after the answer: trade.settle),
        so a test reads the ledger the answer led to."""
        await application(scope, receive, send)
        await background.drain()

    transport = httpx.ASGITransport(app=settled)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", timeout=30
    ) as c:
        yield c
    from gateway.asgi import shutdown

    await shutdown()


@pytest.fixture
def redis_scripts(monkeypatch):
    """The keys of every Redis script the gateway runs on its own (kv.Script.__call__), in order."""
    from gateway import kv

    calls: list[list[str]] = []
    real_call = kv.Script.__call__

    async def counting(self, r, keys, args):
        calls.append(keys)
        return await real_call(self, r, keys, args)

    monkeypatch.setattr(kv.Script, "__call__", counting)
    return calls

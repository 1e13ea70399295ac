"""Stage timing (gateway/stages.py): one request in DRAGONFLY_GATEWAY_STAGE_SAMPLE is timed at each
step of the pipeline, observed once it has settled; the others cost nothing. Real PostgreSQL,
Redis and the simulator as the upstream (a 50 ms time to first token, so the upstream stage is
seen to carry it)."""

import itertools

import pytest
from asgiref.sync import sync_to_async

from gateway import stages
from observability.metrics import GATEWAY_STAGE_SECONDS
from tests.gateway.factories import buyer_make, drained
from tests.market.factories import listing_make, seller_make

pytestmark = pytest.mark.django_db(transaction=True)


def _observed() -> dict[str, tuple[float, float]]:
    """{stage: (requests timed, seconds)} as the process's registry has them now."""
    found: dict[str, list[float]] = {}
    for metric in GATEWAY_STAGE_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_count", "_sum")):
                pair = found.setdefault(sample.labels["stage"], [0.0, 0.0])
                pair[0 if sample.name.endswith("_count") else 1] = sample.value
    return {stage: (count, seconds) for stage, (count, seconds) in found.items()}


async def _chat(client, buyer, *, stream: bool):
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {buyer.key}"},
        json={
            "model": "deepseek/deepseek-chat",
            "messages": [{"role": "user", "content": "Hello!"}],
            "max_tokens": 20,
            "stream": stream,
        },
    )
    assert response.status_code == 200, response.text
    await drained()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_sampled_request_is_timed_at_every_step_and_the_others_are_not(
    market, client, settings, monkeypatch, stream
):
    settings.DRAGONFLY_GATEWAY_STAGE_SAMPLE = 3
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-stages?ttft_ms=50"))()
    monkeypatch.setattr(stages, "_requests", itertools.count(1))  # the next is number 1: unsampled
    before = _observed()
    await _chat(client, buyer, stream=stream)
    await _chat(client, buyer, stream=stream)
    assert _observed() == before
    await _chat(client, buyer, stream=stream)  # number 3: sampled
    after = _observed()
    laps = {
        stage: (after[stage][0] - before.get(stage, (0.0, 0.0))[0],
                after[stage][1] - before.get(stage, (0.0, 0.0))[1])
        for stage in after
    }  # fmt: skip
    assert sorted(laps, key=stages.STAGES.index) == list(stages.STAGES)
    assert all(count == 1 for count, _ in laps.values())
    assert all(seconds >= 0 for _, seconds in laps.values())
    assert 0.05 <= laps["upstream"][1] < 5  # the simulator's 50 ms to the first token


async def test_sampling_off_times_nothing(market, client, settings):
    settings.DRAGONFLY_GATEWAY_STAGE_SAMPLE = 0
    buyer = await sync_to_async(buyer_make)()
    await sync_to_async(lambda: listing_make(seller_make(), key="sim-stages-off"))()
    before = _observed()
    for _ in range(3):
        await _chat(client, buyer, stream=False)
    assert _observed() == before

"""Authenticity probes against the simulated upstream: a substitute is caught, confirmed and
suspended with its seller told; an honest listing is never flagged."""

import uuid

import httpx
import pytest

from market import authenticity, authenticity_asks, authenticity_record
from market.models import AuthenticityCheck, CatalogModel, Listing, ListingStatus, Verdict
from redis_clients.clients import get_redis
from simulator.textgen import text_tokens
from simulator.tokenizers import model_prompt_tokens
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "deepseek/deepseek-chat"
MESSAGES = [{"role": "user", "content": authenticity_asks.PROMPT}]
HONEST = text_tokens(authenticity_asks.PROMPT)  # what every simulated deepseek/MiniMax model counts
QWEN = "qwen2.5-7b-instruct"


def key_name():
    return f"sim-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fingerprinted(catalogue):
    """The catalogue knows what the probe prompt costs each simulated chat model."""
    CatalogModel.objects.filter(modality="chat").update(probe_prompt_tokens=HONEST)


def verdicts(listing):
    return list(
        AuthenticityCheck.objects.filter(listing=listing)
        .order_by("at", "pk")
        .values_list("verdict", flat=True)
    )


def recheck_calls(monkeypatch):
    """Confirmation probes asked for, instead of run (eager Celery would run them at once)."""
    calls = []
    monkeypatch.setattr(authenticity_record, "_recheck_enqueue", calls.append)
    return calls


def test_the_fingerprints_differ_between_the_claimed_and_the_cheaper_family():
    assert model_prompt_tokens("deepseek-v4-flash", MESSAGES) == HONEST
    assert model_prompt_tokens(QWEN, MESSAGES) != HONEST


def test_a_substitute_is_caught_confirmed_suspended_and_its_seller_told(
    seller, sim, fingerprinted, mailoutbox, task_calls, client
):
    name = key_name()
    listing = listing_make(seller, key=f"{name}?as_model={QWEN}")
    other = listing_make(seller, key=key_name())

    checks = authenticity.authenticity_run()

    listing.refresh_from_db()
    assert listing.status == ListingStatus.SUSPENDED
    assert ("market.tasks.authenticity_recheck_task", [listing.pk], {}) in task_calls
    assert verdicts(listing) == [Verdict.FAILED, Verdict.FAILED]  # the sweep, then the recheck
    assert verdicts(other) == [Verdict.PASSED]
    assert len(checks) == 2  # the sweep's two; the recheck's own ran in its task
    failed = AuthenticityCheck.objects.filter(listing=listing).first()
    tokens = model_prompt_tokens(QWEN, MESSAGES)
    assert (
        failed.prompt,
        failed.asked_model,
        failed.answered_model,
        failed.expected_prompt_tokens,
        failed.answered_prompt_tokens,
    ) == (authenticity_asks.PROMPT, "deepseek-v4-flash", QWEN, HONEST, tokens)
    assert failed.reason == (
        f'the upstream answered as "{QWEN}" (expected "deepseek-v4-flash"); the fixed probe '
        f"text cost {tokens} input tokens (expected {HONEST}: another tokenizer)"
    )
    since = listing.created_at  # the model never passed on it: all it served is refunded
    assert listing.status_reason == (
        f"The authenticity probe of {CHAT} failed twice in its last three checks: {failed.reason}. "
        f"What the listing served with {CHAT} since {since:%Y-%m-%d %H:%M} UTC is refunded to "
        "its buyers from your earnings (Trading Terms, clause 8). Make sure the "
        'key is answered by "deepseek-v4-flash" itself (no relay or model mapping in between), '
        "then re-key the listing."
    )
    # Refunded at once by this process (nothing was served here), not through a task.
    assert "market.tasks.authenticity_refunds_task" not in {name for name, *_ in task_calls}
    assert [m.to for m in mailoutbox] == [[seller.email]]
    assert failed.reason in mailoutbox[0].body
    assert name not in mailoutbox[0].body
    assert not AuthenticityCheck.objects.filter(answered_model__contains=name).exists()
    # The lock is released: once re-keyed and verified, the next sweep asks at once.
    assert get_redis().exists(authenticity.lock_key(listing.pk)) == 0

    client.force_login(seller)
    page = client.get(f"/seller/listings/{listing.pk}/").content.decode()
    assert 'id="authenticity-checks"' in page
    assert "failed twice in its last three checks" in page
    assert f"<code>{QWEN}</code>" in page and f"{HONEST} → {tokens}</td>" in page
    assert f"Why: {failed.reason}" in page.replace("&quot;", '"')
    assert name not in page


def test_a_relay_that_rewrites_the_model_name_is_caught_by_the_prompt_count(
    seller, sim, fingerprinted, mailoutbox
):
    listing = listing_make(seller, key=f"{key_name()}?as_model={QWEN}&mask_model=1")
    authenticity.authenticity_run()
    listing.refresh_from_db()
    assert listing.status == ListingStatus.SUSPENDED
    check = AuthenticityCheck.objects.filter(listing=listing).first()
    assert check.answered_model == "deepseek-v4-flash"
    assert check.reason.startswith("the fixed probe text cost")
    assert len(mailoutbox) == 1


def test_a_substitute_is_caught_by_name_before_any_fingerprint_is_known(seller, sim, catalogue):
    listing = listing_make(seller, key=f"{key_name()}?as_model=MiniMax-M2.5")
    authenticity.authenticity_run()
    listing.refresh_from_db()
    assert listing.status == ListingStatus.SUSPENDED
    check = AuthenticityCheck.objects.filter(listing=listing).first()
    assert (check.expected_prompt_tokens, check.answered_model) == (None, "MiniMax-M2.5")


def test_one_failure_asks_again_and_two_of_the_last_three_suspend(
    seller, sim, fingerprinted, monkeypatch, mailoutbox
):
    calls = recheck_calls(monkeypatch)
    name = key_name()
    listing = listing_make(seller, key=name)

    def probe_as(model):
        knobs = {"as_model": model} if model else {}
        httpx.put(f"{sim.url}/_sim/keys/{name}", json=knobs).raise_for_status()
        authenticity.authenticity_run(listing_ids=[listing.pk], recheck=True)
        listing.refresh_from_db()
        return listing.status

    assert probe_as(QWEN) == ListingStatus.ACTIVE  # one odd answer: asked again, not suspended
    assert calls == [listing.pk]
    assert probe_as(None) == ListingStatus.ACTIVE
    assert probe_as(None) == ListingStatus.ACTIVE
    assert probe_as(QWEN) == ListingStatus.ACTIVE  # failed, passed, passed, failed: one in three
    assert probe_as(None) == ListingStatus.ACTIVE
    assert probe_as(QWEN) == ListingStatus.SUSPENDED  # failed, passed, failed
    assert verdicts(listing) == ["failed", "passed", "passed", "failed", "passed", "failed"]
    assert calls == [listing.pk, listing.pk]  # the suspending failure asks nothing more
    assert len(mailoutbox) == 1


def test_an_honest_listing_is_never_flagged(seller, other_seller, sim, catalogue, mailoutbox):
    """Many probes, every chat model, with the simulator's randomness: seeded and unseeded
    errors, short and long replies, delays. The fingerprints are learned from a trusted listing."""
    trusted = listing_make(
        other_seller,
        key=key_name(),
        provider="minimax",
        models=("minimax/minimax-m2.5", "minimax/minimax-m2.5-highspeed"),
        trusted=True,
    )
    trusted_ds = listing_make(
        other_seller, key=key_name(), models=(CHAT, "deepseek/deepseek-reasoner"), trusted=True
    )
    authenticity.authenticity_run()
    assert set(
        CatalogModel.objects.filter(modality="chat").values_list("model_id", "probe_prompt_tokens")
    ) == {
        (CHAT, HONEST),
        ("deepseek/deepseek-reasoner", HONEST),
        ("minimax/minimax-m2.5", HONEST),
        ("minimax/minimax-m2.5-highspeed", HONEST),
    }
    keys = [
        "?error_rate=0.3&seed=7",
        "?error_rate=0.5",
        "?tokens=1",
        "?tokens=400&seed=3",
        "?ttft_ms=5&delay_ms=5",
        "?base_resp=1&error_rate=0.2&seed=11",
    ]
    honest = [listing_make(seller, key=key_name() + k) for k in keys]
    honest.append(
        listing_make(
            seller, key=key_name() + "?seed=5", models=(CHAT, "deepseek/deepseek-reasoner")
        )
    )
    honest.append(
        listing_make(seller, key=key_name(), provider="minimax", models=("minimax/minimax-m2.5",))
    )
    ids = [listing.pk for listing in [trusted, trusted_ds, *honest]]
    for _ in range(25):
        authenticity.authenticity_run(listing_ids=ids, recheck=True)

    checks = AuthenticityCheck.objects.filter(listing_id__in=ids)
    assert not checks.exclude(verdict=Verdict.PASSED).exists()
    assert checks.count() > 25 * 9  # the error knobs cost some rounds, never a verdict
    assert set(checks.values_list("answered_prompt_tokens", flat=True)) == {HONEST}
    assert set(Listing.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        ListingStatus.ACTIVE
    }
    assert mailoutbox == []


def test_an_upstream_error_proves_nothing_and_records_nothing(seller, sim, fingerprinted):
    listing = listing_make(seller, key=f"{key_name()}?status=500")
    assert authenticity.authenticity_run() == []
    listing.refresh_from_db()
    assert (listing.status, AuthenticityCheck.objects.count()) == (ListingStatus.ACTIVE, 0)


def test_the_sweep_is_single_flight_and_jittered(seller, sim, fingerprinted, settings):
    settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS = 1000
    name = key_name()
    listings = [listing_make(seller, key=name) for _ in range(20)]
    assert len(authenticity.authenticity_run()) == 20
    assert authenticity.authenticity_run() == []  # none is due again
    assert sim.app.registry.stats[name].requests == 20
    ttls = [get_redis().ttl(authenticity.lock_key(listing.pk)) for listing in listings]
    assert all(790 <= ttl <= 1200 for ttl in ttls)
    assert len(set(ttls)) > 1


def test_only_active_listings_are_probed(seller, sim, fingerprinted):
    name = key_name()
    listing_make(seller, key=name, status=ListingStatus.PAUSED)
    listing_make(seller, key=name, status=ListingStatus.PENDING)
    assert authenticity.authenticity_run() == []
    assert name not in sim.app.registry.stats


def test_an_interval_of_zero_turns_the_probes_off(seller, sim, fingerprinted, settings):
    settings.DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS = 0
    listing_make(seller, key=f"{key_name()}?as_model={QWEN}")
    assert authenticity.authenticity_run() == []
    assert AuthenticityCheck.objects.count() == 0


def test_the_target_hides_the_key_and_asks_for_one_token(seller, sim, catalogue):
    name = key_name()
    listing = listing_make(seller, key=name)
    [target] = authenticity.targets_for(listing)
    assert name not in repr(target)
    assert b'"max_tokens":1' in target.body and b'"model":"deepseek-v4-flash"' in target.body


def test_a_provider_wide_count_change_suspends_no_one(seller, other_seller, sim, catalogue):
    """The provider's new chat template changes every listing's count: the trusted listing
    (probed first) clears the stale fingerprint, the others are inconclusive, then all pass."""
    CatalogModel.objects.filter(model_id=CHAT).update(probe_prompt_tokens=HONEST + 3)
    trusted = listing_make(other_seller, key=key_name(), trusted=True)
    honest = listing_make(seller, key=key_name())

    authenticity.authenticity_run()

    assert verdicts(trusted) == verdicts(honest) == [Verdict.INCONCLUSIVE]
    assert CatalogModel.objects.get(model_id=CHAT).probe_prompt_tokens is None
    assert AuthenticityCheck.objects.get(listing=honest).reason.endswith(
        "a trusted listing answers the same: the provider changed, not the seller"
    )
    get_redis().delete(authenticity.lock_key(trusted.pk), authenticity.lock_key(honest.pk))
    authenticity.authenticity_run()
    assert CatalogModel.objects.get(model_id=CHAT).probe_prompt_tokens == HONEST
    assert verdicts(honest)[-1] == Verdict.PASSED
    assert set(Listing.objects.values_list("status", flat=True)) == {ListingStatus.ACTIVE}


def test_the_confirmation_asks_the_trusted_listings_too(
    seller, other_seller, sim, catalogue, mailoutbox
):
    """The trusted listing is not due when the other fails on the count alone; the confirmation
    probe asks it as well, first, and its answer shows the provider changed."""
    CatalogModel.objects.filter(model_id=CHAT).update(probe_prompt_tokens=HONEST + 3)
    trusted = listing_make(other_seller, key=key_name(), trusted=True)
    honest = listing_make(seller, key=key_name())
    get_redis().set(authenticity.lock_key(trusted.pk), "1", ex=60)  # probed a moment ago

    authenticity.authenticity_run()  # the recheck runs inline (eager Celery)

    assert verdicts(honest) == [Verdict.FAILED, Verdict.INCONCLUSIVE]
    assert verdicts(trusted) == [Verdict.INCONCLUSIVE]
    assert Listing.objects.get(pk=honest.pk).status == ListingStatus.ACTIVE
    assert mailoutbox == []


def test_a_substitute_is_still_caught_when_a_trusted_listing_is_honest(
    seller, other_seller, sim, fingerprinted
):
    trusted = listing_make(other_seller, key=key_name(), trusted=True)
    listing = listing_make(seller, key=f"{key_name()}?as_model={QWEN}&mask_model=1")
    authenticity.authenticity_run()
    assert Listing.objects.get(pk=listing.pk).status == ListingStatus.SUSPENDED
    assert verdicts(listing) == [Verdict.FAILED, Verdict.FAILED]
    assert set(verdicts(trusted)) == {Verdict.PASSED}
    assert CatalogModel.objects.get(model_id=CHAT).probe_prompt_tokens == HONEST

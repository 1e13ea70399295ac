"""Authenticity probes of embedding, rerank and speech listings against the simulated upstream:
the fingerprint is learned from a trusted listing, a substitute behind a relay that rewrites the
model name is caught by it and suspended, and honest listings always pass."""

import uuid
from dataclasses import dataclass

import pytest

from market import authenticity, authenticity_asks
from market.models import AuthenticityCheck, CatalogModel, Listing, ListingStatus, Modality, Verdict
from redis_clients.clients import get_redis
from tests.market.factories import listing_make

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Case:
    provider: str
    model_id: str
    substitute: str  # what answers instead (the simulator's as_model knob)
    caught_by: str  # the start of the failure's reason


EMBEDDING_OPENAI = "deepseek/test-embedding"  # an embedding model on OpenAI's wire (made below)
CASES = {
    "embedding (MiniMax wire)": Case(
        "minimax", "minimax/embo-01", "qwen3-embedding-0.6b", "the fixed probe text cost"
    ),
    "embedding (OpenAI wire)": Case(
        "deepseek", EMBEDDING_OPENAI, "llama-embed-tiny", "the fixed probe text cost"
    ),
    "rerank": Case(
        "jina",
        "jina/jina-reranker-v2-base-multilingual",
        "bge-reranker-base",
        "the fixed ranking's scores differ",
    ),
    "speech": Case("minimax", "minimax/speech-02-hd", "kokoro-82m", "the fixed text was spoken in"),
}


@pytest.fixture
def openai_embedding(catalogue):
    CatalogModel.objects.create(
        model_id=EMBEDDING_OPENAI,
        provider_id=catalogue["deepseek/deepseek-chat"].provider_id,
        upstream_name="test-embedding-3",
        modality=Modality.EMBEDDING,
        list_input_nusd=20_000_000,
    )


def key_name():
    return f"sim-{uuid.uuid4().hex[:10]}"


def verdicts(listing):
    return list(
        AuthenticityCheck.objects.filter(listing=listing)
        .order_by("at", "pk")
        .values_list("verdict", flat=True)
    )


def listing_of(seller, case: Case, key: str, **kwargs) -> Listing:
    return listing_make(seller, key=key, provider=case.provider, models=(case.model_id,), **kwargs)


def due_again(*listings: Listing) -> None:
    get_redis().delete(*(authenticity.lock_key(listing.pk) for listing in listings))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_masked_substitute_is_caught_by_the_fingerprint_and_honest_listings_pass(
    case, seller, other_seller, sim, openai_embedding, mailoutbox
):
    trusted = listing_of(other_seller, case, key_name(), trusted=True)
    authenticity.authenticity_run()  # the trusted listing's first passing probe: learned
    model = CatalogModel.objects.get(model_id=case.model_id)
    learned = AuthenticityCheck.objects.get(listing=trusted)
    # Passed on the name where the wire names the model; else nothing was known to compare.
    assert learned.verdict in (Verdict.PASSED, Verdict.INCONCLUSIVE)
    assert model.probe_fingerprint == learned.answered_fingerprint is not None

    name = key_name()
    substitute = listing_of(seller, case, f"{name}?as_model={case.substitute}&mask_model=1")
    honest = listing_of(seller, case, key_name())
    due_again(trusted)
    authenticity.authenticity_run()  # the recheck of the substitute runs inline (eager Celery)

    assert verdicts(substitute) == [Verdict.FAILED, Verdict.FAILED]
    assert Listing.objects.get(pk=substitute.pk).status == ListingStatus.SUSPENDED
    failed = AuthenticityCheck.objects.filter(listing=substitute).first()
    assert failed.reason.startswith(case.caught_by), failed.reason
    assert failed.answered_model in ("", model.upstream_name)  # the name was rewritten or absent
    assert failed.expected_fingerprint == model.probe_fingerprint
    assert failed.prompt == authenticity_asks.ASKS[model.modality].text
    assert [m.to for m in mailoutbox] == [[seller.email]]
    assert failed.reason in mailoutbox[0].body and name not in mailoutbox[0].body

    assert verdicts(honest) == [Verdict.PASSED]
    assert set(verdicts(trusted)[1:]) == {Verdict.PASSED}
    for listing in (honest, trusted):
        assert Listing.objects.get(pk=listing.pk).status == ListingStatus.ACTIVE
    # An honest listing keeps passing, sweep after sweep.
    for _ in range(3):
        due_again(honest, trusted)
        authenticity.authenticity_run()
    assert set(verdicts(honest)) == {Verdict.PASSED} and len(verdicts(honest)) == 4


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_substitute_that_names_itself_is_caught_before_any_fingerprint(
    case, seller, sim, openai_embedding
):
    """Where the wire names a model (OpenAI's embeddings, Jina's rerank) the name alone catches
    an open substitute; where it does not (MiniMax's), nothing is known yet: inconclusive."""
    listing = listing_of(seller, case, f"{key_name()}?as_model={case.substitute}")
    authenticity.authenticity_run()
    check = AuthenticityCheck.objects.filter(listing=listing).first()
    if case.provider == "minimax":
        assert check.verdict == Verdict.INCONCLUSIVE
        assert Listing.objects.get(pk=listing.pk).status == ListingStatus.ACTIVE
    else:
        assert check.answered_model == case.substitute
        assert Listing.objects.get(pk=listing.pk).status == ListingStatus.SUSPENDED


def test_the_substitutes_answer_differently_beyond_the_tolerances(sim, catalogue):
    """The simulator's substitutes are caught for the reason a real one is: the vector points
    elsewhere, the scores move by more than float noise, the sentence is spoken at another pace."""
    embo = {"dimensions": 1536, "head": [1.0] + [0.0] * 15}
    assert authenticity_asks.fingerprint_gap("embedding", embo, embo) == ""
    assert authenticity_asks.fingerprint_gap(
        "embedding", embo, {**embo, "head": [0.0, 1.0] + [0.0] * 14}
    ).startswith("the fixed text's vector points elsewhere (cosine 0.00")
    assert "1024 dimensions" in authenticity_asks.fingerprint_gap(
        "embedding", embo, {**embo, "dimensions": 1024}
    )
    scores = {"scores": [0.9, 0.5, 0.1]}
    assert authenticity_asks.fingerprint_gap("rerank", scores, {"scores": [0.905, 0.5, 0.1]}) == ""
    assert authenticity_asks.fingerprint_gap("rerank", scores, {"scores": [0.92, 0.5, 0.1]})
    speech = {"characters": 60, "audio_ms": 3600}
    assert authenticity_asks.fingerprint_gap("speech", speech, {**speech, "audio_ms": 3900}) == ""
    assert authenticity_asks.fingerprint_gap("speech", speech, {**speech, "audio_ms": 2880})
    assert authenticity_asks.fingerprint_gap("speech", speech, {**speech, "characters": 61})
    # Nothing to compare: no fingerprint yet, or a changed probe's other shape.
    assert authenticity_asks.fingerprint_gap("speech", None, speech) is None
    assert authenticity_asks.fingerprint_gap("rerank", scores, {"scores": [0.9]}) is None
    assert authenticity_asks.fingerprint_gap("rerank", scores, {"other": 1}) is None
    assert authenticity_asks.fingerprint_gap("chat", scores, scores) is None


def test_a_provider_wide_change_of_vectors_suspends_no_one(seller, other_seller, sim, catalogue):
    """The provider re-trains embo-01 under the same name: every listing's vector moves. The
    trusted listing clears the stale fingerprint, the others are inconclusive, then all pass."""
    case = CASES["embedding (MiniMax wire)"]
    stale = {"dimensions": 1536, "head": [0.25] * 16}
    CatalogModel.objects.filter(model_id=case.model_id).update(probe_fingerprint=stale)
    trusted = listing_of(other_seller, case, key_name(), trusted=True)
    honest = listing_of(seller, case, key_name())

    authenticity.authenticity_run()

    assert verdicts(trusted) == verdicts(honest) == [Verdict.INCONCLUSIVE]
    assert CatalogModel.objects.get(model_id=case.model_id).probe_fingerprint is None
    assert AuthenticityCheck.objects.get(listing=honest).reason.endswith(
        "a trusted listing answers the same: the provider changed, not the seller"
    )
    due_again(trusted, honest)
    authenticity.authenticity_run()  # the trusted listing learns the new vector
    assert CatalogModel.objects.get(model_id=case.model_id).probe_fingerprint is not None
    due_again(trusted, honest)
    authenticity.authenticity_run()
    assert verdicts(honest)[-1] == verdicts(trusted)[-1] == Verdict.PASSED
    assert set(Listing.objects.values_list("status", flat=True)) == {ListingStatus.ACTIVE}


def test_the_seller_sees_whether_the_fingerprint_matched(seller, sim, catalogue, client):
    case = CASES["rerank"]
    trusted = listing_of(seller, case, key_name(), trusted=True)
    authenticity.authenticity_run()
    due_again(trusted)
    authenticity.authenticity_run()
    client.force_login(seller)
    page = client.get(f"/seller/listings/{trusted.pk}/").content.decode()
    assert '<td data-label="Fingerprint">matched</td>' in page  # the second check, judged by it
    assert '<td data-label="Fingerprint">\u2013</td>' in page  # the first, which learned it

"""Demo data for the market: the contract's catalogue pointed at the simulated upstream, and demo listings."""

from market import catalogue
from market.models import CatalogModel, Provider


def catalogue_seed(*, upstream_url: str) -> str:
    """The contract's catalogue (market/catalogue.py), every provider pointed at the simulator.

    The demo always matches the contract (`update=True`): `make run` restores it on every start.
    """
    from market.services import terms_ensure_v1

    report = catalogue.catalogue_load(update=True, base_url=f"{upstream_url}/v1")
    terms = terms_ensure_v1()
    return (
        f"{len(catalogue.PROVIDERS)} providers, {len(catalogue.MODELS)} models "
        f"({report.summary()}), {terms} terms published"
    )


# (name, provider, simulated key, trusted, ask as % of list, model ids). Keys use the simulator's
# knob syntax (docs/simulator.md): name?ttft_ms=..&tps=.. shapes speed, reject=401 a dead key.
DEMO_LISTINGS = [
    (
        "DeepSeek capacity A",
        "deepseek",
        "sim-deepseek-a?ttft_ms=120&tps=90",
        False,
        80,
        ["deepseek/deepseek-chat", "deepseek/deepseek-reasoner"],
    ),
    (
        "DeepSeek capacity B",
        "deepseek",
        "sim-deepseek-b?ttft_ms=450&tps=35",
        True,
        90,
        ["deepseek/deepseek-chat", "deepseek/deepseek-reasoner"],
    ),
    (
        "MiniMax capacity",
        "minimax",
        "sim-minimax?ttft_ms=200&tps=60",
        True,
        85,
        [
            "minimax/minimax-m2.5",
            "minimax/minimax-m2.5-highspeed",
            "minimax/speech-02-hd",
            "minimax/speech-02-turbo",
        ],
    ),
    (
        "Jina rerank capacity",
        "jina",
        "sim-jina?ttft_ms=60",
        True,
        80,
        ["jina/jina-reranker-v2-base-multilingual"],
    ),
    (
        "MiniMax embeddings",
        "minimax",
        "sim-minimax-embed?ttft_ms=40",
        True,
        85,
        ["minimax/embo-01"],
    ),
    (
        "DeepSeek capacity (expired key)",
        "deepseek",
        "sim-deepseek-expired?reject=401",
        False,
        70,
        ["deepseek/deepseek-chat"],
    ),
]


def _demo_seller():
    from allauth.account.models import EmailAddress

    from accounts.models import User
    from demo import identities as demo

    user = User.objects.filter(email__iexact=demo.DEMO_SELLER_EMAIL).first()
    if user is None:
        user = User.objects.create_user(demo.DEMO_SELLER_EMAIL, demo.demo_password())
    demo.demo_public_password_revoke(user)
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    return user


def listings_seed(*, upstream_url: str) -> str:
    """The demo seller accepts the seller terms and lists capacity on the simulated upstream.

    Listings start active (the seed is trusted); the probes then keep them honest, so the one with
    a rejected key is suspended after its first probe. Existing demo listings are left alone.
    """
    from market import services
    from market.models import Listing, ListingStatus

    services.terms_ensure_v1()
    seller = _demo_seller()
    services.terms_accept(user=seller, audience="seller", ip_address=None)
    created = 0
    for name, provider_slug, key, trusted, percent, model_ids in DEMO_LISTINGS:
        if Listing.objects.filter(seller=seller, name=name).exists():
            continue
        provider = Provider.objects.get(slug=provider_slug)
        models = CatalogModel.objects.filter(model_id__in=model_ids).order_by("model_id")
        offers = [
            services.OfferInput(
                model=m,
                ask_input_nusd=m.list_input_nusd * percent // 100,
                ask_output_nusd=m.list_output_nusd * percent // 100,
            )
            for m in models
        ]
        listing = services.listing_create(
            seller=seller,
            provider=provider,
            name=name,
            upstream_key=key,
            offers=offers,
            concurrency_cap=16,
            status=ListingStatus.ACTIVE,
            verify=False,
        )
        if trusted:
            services.listing_set_trusted(listing_id=listing.pk, trusted=True)
        created += 1
    total = Listing.objects.filter(seller=seller).exclude(status=ListingStatus.DELETED).count()
    return f"{created} demo listings created, {total} in all (seller {seller.email})"

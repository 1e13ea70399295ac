"""The benchmark's Django-side steps, run in a subprocess with the bench database's environment.

    python -m bench.django_side setup --upstream-url URL   -> JSON: key, routes (one per upstream kind)
    python -m bench.django_side count                      -> JSON: settled requests (UsageRecord rows)

`setup` reuses the demo seed (verified buyer with the demo key and accepted buyer terms, catalogue,
demo listings), grants the buyer $10,000, sets its plan to Enterprise (no rate limits), and gives
each upstream kind its own listing whose seller key carries the simulator's knobs (for example
``sim-bench-slow?delay_ms=200``), so the same simulator answers as a zero-delay or a 200 ms
upstream. Other listings offering the bench models are paused so routing can only pick the bench
listing, and the bench listings have no concurrency or rate cap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# kind -> (model id, simulator knobs carried in the bench listing's seller key)
KINDS: dict[str, tuple[str, str]] = {
    "fast": ("deepseek/deepseek-chat", "tokens=16"),
    "slow": ("deepseek/deepseek-reasoner", "tokens=16&delay_ms=200"),
    "soak": ("minimax/minimax-m2.5", "tokens=16&ttft_ms=20&tps=200"),
}
CREDIT_USD = 10_000


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dragonfly.settings")
    import django

    django.setup()


def _create_listing(*, seller, model, key: str, name: str):
    """A bench listing, active at once (no probe), at half the list price, with no caps."""
    from market import services as market_services
    from market.models import ListingStatus

    return market_services.listing_create(
        seller=seller,
        provider=model.provider,
        name=name,
        upstream_key=key,
        offers=[
            market_services.OfferInput(
                model=model,
                ask_input_nusd=model.list_input_nusd // 2,
                ask_output_nusd=model.list_output_nusd // 2,
            )
        ],
        concurrency_cap=100_000,
        requests_per_minute=None,
        daily_spend_cap_nusd=None,
        status=ListingStatus.ACTIVE,
        verify=False,
    )


def setup(upstream_url: str) -> dict:
    _setup_django()
    from django.core.management import call_command
    from django.db import transaction

    from accounts.models import Plan, User
    from demo import identities as demo
    from market import services as market_services
    from market.models import CatalogModel, Listing, ListingStatus

    call_command("seed_demo", upstream_url=upstream_url, force=True, stdout=sys.stderr)
    buyer = User.objects.get(email__iexact=demo.DEMO_BUYER_EMAIL)
    seller = User.objects.get(email__iexact=demo.DEMO_SELLER_EMAIL)
    call_command(
        "grant_credit", buyer.email, str(CREDIT_USD), reason="benchmark", stdout=sys.stderr
    )
    with transaction.atomic():
        # no rate limits: the Enterprise plan (unlimited), as an operator would set it in the admin
        enterprise = Plan.objects.get(slug="enterprise")
        User.objects.filter(pk=buyer.pk).update(plan_override=enterprise)
        routes = {}
        for kind, (model_id, knobs) in KINDS.items():
            model = CatalogModel.objects.select_related("provider").get(model_id=model_id)
            key = f"sim-bench-{kind}?{knobs}"
            # only the bench listing may serve this model: pause the demo listings offering it
            for other in Listing.objects.filter(
                offers__model=model, status__in=[ListingStatus.ACTIVE, ListingStatus.PENDING]
            ):
                market_services.listing_pause(listing=other)
            listing = _create_listing(seller=seller, model=model, key=key, name=f"bench {kind}")
            routes[kind] = {
                "model": model_id,
                "upstream_model": model.upstream_name,
                "upstream_key": key,
                "listing_id": listing.pk,
            }
    return {"access_key": demo.demo_access_key(), "buyer_id": buyer.pk, "routes": routes}


def count() -> dict:
    _setup_django()
    from django.db.models import Count

    from billing.models import UsageRecord

    by_outcome = dict(
        UsageRecord.objects.values_list("outcome").annotate(n=Count("id")).order_by("outcome")
    )
    return {
        "settled": UsageRecord.objects.count(),
        "streamed": UsageRecord.objects.filter(streamed=True).count(),
        "by_outcome": by_outcome,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.django_side")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--upstream-url", required=True)
    sub.add_parser("count")
    args = parser.parse_args(argv)
    result = setup(args.upstream_url) if args.cmd == "setup" else count()
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

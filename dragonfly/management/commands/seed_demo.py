"""Load the catalogue and the demo marketplace, idempotently: running it twice changes nothing.

For the embedded default (`make run`) only. A production installation loads the catalogue with
`catalogue_load`; there this command refuses unless `--force`, and even then its demo accounts get
no usable password (demo.identities.demo_password).
"""

from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

# Each app seeds its own part, in this order (later steps use what earlier ones created).
STEPS = [
    "market.demo.catalogue_seed",
    "billing.demo.seed",
    "accounts.demo.seed",
    "market.demo.listings_seed",
]


def _resolve(dotted: str):
    module_name, _, func_name = dotted.rpartition(".")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError:
        return None
    return getattr(module, func_name, None)


class Command(BaseCommand):
    help = "Load the provider and model catalogue and the demo seller, listings and buyer."

    def add_arguments(self, parser):
        parser.add_argument(
            "--upstream-url",
            default=settings.DRAGONFLY_SIMULATOR_URL,
            help="base URL of the simulated upstream the demo providers point at",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="load the demo outside the embedded default (its accounts get no usable password)",
        )

    def handle(self, *args, **options):
        if not settings.DRAGONFLY_EMBEDDED and not options["force"]:
            raise CommandError(
                "seed_demo is for the embedded default (no DATABASE_URL); this installation has "
                "a database server. It would point the providers at the simulator and create demo "
                "accounts. Load the production catalogue with `manage.py catalogue_load`; pass "
                "--force to load the demo anyway."
            )
        upstream_url = options["upstream_url"].rstrip("/")
        for dotted in STEPS:
            step = _resolve(dotted)
            if step is None:
                continue
            with transaction.atomic():
                summary = step(upstream_url=upstream_url)
            self.stdout.write(f"{dotted}: {summary}")
        self.stdout.write(self.style.SUCCESS("Demo data is loaded."))

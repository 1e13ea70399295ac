"""Load the contract's providers and models for production (market/catalogue.py), idempotently."""

from django.core.management.base import BaseCommand

from market import catalogue


class Command(BaseCommand):
    help = (
        "Create the contract's providers and models (real upstream base URLs, upstream model "
        "names, list prices, context, capabilities). No users, listings or simulator. Rows an "
        "operator changed are kept unless --update is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--update",
            action="store_true",
            help="overwrite rows that differ from the contract (an operator's price or URL edits)",
        )

    def handle(self, *args, **options):
        update = options["update"]
        self.stdout.write(
            f"Loading {len(catalogue.PROVIDERS)} providers and {len(catalogue.MODELS)} models..."
        )
        report = catalogue.catalogue_load(
            update=update, progress=lambda line: self.stdout.write(f"  {line}")
        )
        if report.kept:
            rows = (
                "1 row differs from the contract and was kept as it is"
                if len(report.kept) == 1
                else f"{len(report.kept)} rows differ from the contract and were kept as they are"
            )
            self.stdout.write(self.style.WARNING(f"{rows}; run with --update to overwrite them."))
        if report.changed:
            self.stdout.write(self.style.SUCCESS(f"Catalogue loaded: {report.summary()}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Nothing to change: {report.summary()}."))

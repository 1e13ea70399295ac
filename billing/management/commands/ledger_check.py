"""`manage.py ledger_check`: verify every ledger invariant; exit 1 and list violations if any."""

import sys

from django.core.management.base import BaseCommand

from billing.checks import ledger_check_run


class Command(BaseCommand):
    help = (
        "Check the ledger: zero-sum transactions, cached balances equal to entries, no negative "
        "available balance, no expired hold, buyer debit + overrun = seller credit + fee per request. "
        "Reads one snapshot (safe under traffic) and records the result for /metrics."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=5000, help="rows per progress step")

    def handle(self, *args, chunk: int, **options):
        problems = ledger_check_run(
            progress=lambda line: self.stdout.write(f"  {line}"), chunk=chunk
        )
        if problems:
            for problem in problems:
                self.stderr.write(f"VIOLATION: {problem}")
            self.stderr.write(f"ledger_check: {len(problems)} violation(s)")
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS("ledger_check: every invariant holds"))

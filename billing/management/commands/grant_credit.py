"""`manage.py grant_credit EMAIL AMOUNT_USD --reason TEXT`: operators grant promotional credit."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from billing import services
from billing.errors import BillingError
from billing.money import format_usd, usd_to_nusd


class Command(BaseCommand):
    help = "Grant credit to a buyer's wallet from the promotions account."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("amount_usd", help="decimal dollars, e.g. 5 or 2.50")
        parser.add_argument("--reason", required=True, help="why (kept on the ledger transaction)")

    def handle(self, *args, email, amount_usd, reason, **options):
        if not reason.strip():
            raise CommandError("A credit grant needs a reason (--reason TEXT).")
        user = get_user_model().objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        try:
            amount = usd_to_nusd(amount_usd)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            txn = services.credit_grant(
                user=user, amount_nusd=amount, reason=f"grant_credit: {reason.strip()}"
            )
        except BillingError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Granted {format_usd(amount)} to {user.email} (transaction #{txn.pk})."
            )
        )

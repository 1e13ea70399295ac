"""`manage.py issue_token EMAIL [--name N] [--scope S ...]`: print a new personal API token (for an
operator's script or a demo run without a browser; buyers make theirs in the dashboard)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import tokens_services
from accounts.models import TokenScope, User


class Command(BaseCommand):
    help = "Create a personal API token for a user and print it (the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="CLI token")
        parser.add_argument(
            "--scope",
            action="append",
            choices=TokenScope.values,
            dest="scopes",
            help="Repeat for several; default: read only.",
        )

    def handle(self, *args, email, name, scopes, **options):
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        try:
            _, secret = tokens_services.personal_token_create(
                user=user, name=name, scopes=scopes or [TokenScope.READ.value]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(secret)

"""`manage.py issue_key EMAIL [--name N] [--profile P]`: print a new access key (operators, scripts)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import RoutingProfile, User


class Command(BaseCommand):
    help = "Create an access key for a verified user and print it (the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--profile", default=services.DEFAULT_PROFILE_NAME)

    def handle(self, *args, email, name, profile, **options):
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user with email {email}.")
        if profile == services.DEFAULT_PROFILE_NAME:
            bound = services.routing_profile_default(user=user)
        else:
            bound = RoutingProfile.objects.filter(user=user, name=profile).first()
            if bound is None:
                raise CommandError(f"{email} has no routing profile named {profile!r}.")
        try:
            _, secret = services.access_key_create(user=user, name=name, profile=bound)
        except services.EmailNotVerified as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(secret)

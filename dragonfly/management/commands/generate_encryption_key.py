"""Print a new entry for DRAGONFLY_ENCRYPTION_KEYS (put it first to make it the current key)."""

import base64
import secrets

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Generate a key id and 32 random bytes for encrypting seller upstream keys."

    def add_arguments(self, parser):
        parser.add_argument("--kid", default=None, help="key id (default: k + a random suffix)")

    def handle(self, *args, **options):
        kid = options["kid"] or "k" + secrets.token_hex(3)
        self.stdout.write(f"{kid}:{base64.b64encode(secrets.token_bytes(32)).decode()}")

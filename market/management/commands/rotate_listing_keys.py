"""Re-encrypt every listing's upstream key under the current kid of DRAGONFLY_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from market import crypto, services


class Command(BaseCommand):
    help = "Re-encrypt all listing keys under the current encryption key id (the first entry)."

    def handle(self, *args, **options):
        kid = crypto.current_kid()
        self.stdout.write(f"Re-encrypting listing keys under kid {kid!r}...")

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  {done}/{total}")

        count = services.listing_keys_rotate(progress=progress)
        self.stdout.write(self.style.SUCCESS(f"{count} listing keys re-encrypted under {kid!r}."))

"""What every browser test shares: Debian's headless Chromium, where screenshots go, and logging
in a user made by tests/accounts/factories (whose password is PASSWORD)."""

import os
from pathlib import Path

from django.conf import settings

from tests.accounts.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def screenshot_dir() -> Path:
    """$DRAGONFLY_SCREENSHOT_DIR, default var/screenshots (created), for people to look at."""
    shots = Path(
        os.environ.get("DRAGONFLY_SCREENSHOT_DIR")
        or Path(settings.BASE_DIR) / "var" / "screenshots"
    )
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def log_in(page, base: str, email: str) -> None:
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

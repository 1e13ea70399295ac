"""The accounts app: users, email verification, signup credit, access keys, routing profiles, plans."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and access keys"

    def ready(self) -> None:
        from accounts import checks, signals  # noqa: F401  (registers the check, connects the receivers)

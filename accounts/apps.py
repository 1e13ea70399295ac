"""The accounts app: users, email verification, signup credit, access keys, routing profiles, plans."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and access keys"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (connects the receivers)

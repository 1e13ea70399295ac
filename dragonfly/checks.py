"""Deployment checks: `manage.py check --deploy` refuses a configuration unfit for production.

The web entrypoint (docker/entrypoint.sh) runs `check --deploy` before it serves, so each error
below stops a container from starting with a message that says what to set. They run only with
`--deploy`: the embedded default (`make run`) and the tests are not production and pass as they are.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
# Values copied from examples rather than generated; none of them may reach production.
SECRET_KEY_PLACEHOLDERS = ("change-me", "changeme", "django-insecure", "not-for-production")
# Mail that never leaves the machine: nobody could verify an email or reset a password.
LOCAL_MAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "mail.backends.ConsoleAndFileBackend",
}
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104 - compared, not bound


def _generated(name: str) -> str:
    """A secret the embedded default generated under var/ (settings._dev_secret), or ""."""
    path = settings.VAR_DIR / name
    return path.read_text().strip() if path.exists() else ""


@register(Tags.security, deploy=True)
def embedded_default_check(app_configs, **kwargs):
    if settings.DRAGONFLY_EMBEDDED:
        return [
            Error(
                "DATABASE_URL is not set: this is the embedded default (SQLite, an in-process "
                "Redis substitute), not a production configuration.",
                hint="Set DATABASE_URL and REDIS_URL (see .env.example).",
                id="dragonfly.E001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def secret_key_check(app_configs, **kwargs):
    key = settings.SECRET_KEY or ""
    hint = (
        "Set SECRET_KEY to a long random value, for example the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(64))'."
    )
    lowered = key.lower()
    if any(placeholder in lowered for placeholder in SECRET_KEY_PLACEHOLDERS):
        return [Error("SECRET_KEY is a placeholder.", hint=hint, id="dragonfly.E002")]
    if len(key) < SECRET_KEY_MIN_LENGTH or len(set(key)) < SECRET_KEY_MIN_UNIQUE:
        return [
            Error(
                f"SECRET_KEY is too short or too simple (at least {SECRET_KEY_MIN_LENGTH} "
                f"characters, {SECRET_KEY_MIN_UNIQUE} of them different).",
                hint=hint,
                id="dragonfly.E003",
            )
        ]
    if key == _generated("secret_key"):
        return [
            Error(
                "SECRET_KEY is the one the embedded default generated under var/.",
                hint=hint,
                id="dragonfly.E004",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def base_url_check(app_configs, **kwargs):
    url = settings.DRAGONFLY_BASE_URL
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.hostname in LOOPBACK_HOSTS:
        return [
            Error(
                f"DRAGONFLY_BASE_URL is {url!r}: links in mail and in /v1 errors would not reach "
                "buyers, or would send them over plain HTTP.",
                hint="Set DRAGONFLY_BASE_URL to the public https:// address, e.g. "
                "https://dragonfly.example.com.",
                id="dragonfly.E005",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def mail_check(app_configs, **kwargs):
    if settings.EMAIL_BACKEND in LOCAL_MAIL_BACKENDS:
        return [
            Error(
                f"Mail goes to {settings.EMAIL_BACKEND}, not to an SMTP server: nobody can "
                "verify an email address or reset a password.",
                hint="Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD).",
                id="dragonfly.E006",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def encryption_keys_check(app_configs, **kwargs):
    from market import crypto

    hint = (
        "Set DRAGONFLY_ENCRYPTION_KEYS to the output of "
        "`python manage.py generate_encryption_key`, and keep a copy: without it no seller key "
        "can be decrypted."
    )
    spec = settings.DRAGONFLY_ENCRYPTION_KEYS
    if not spec:
        return [Error("DRAGONFLY_ENCRYPTION_KEYS is not set.", hint=hint, id="dragonfly.E007")]
    try:
        crypto.current_kid()
    except ImproperlyConfigured as exc:
        return [Error(f"DRAGONFLY_ENCRYPTION_KEYS: {exc}.", hint=hint, id="dragonfly.E008")]
    if spec == _generated("encryption_keys"):
        return [
            Error(
                "DRAGONFLY_ENCRYPTION_KEYS is the key the embedded default generated under var/.",
                hint=hint,
                id="dragonfly.E009",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def debug_check(app_configs, **kwargs):
    if settings.DEBUG:
        return [
            Error(
                "DEBUG is on: error pages would show settings and source to anyone.",
                hint="Set DEBUG=0.",
                id="dragonfly.E010",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def stripe_check(app_configs, **kwargs):
    """Not an error: without Stripe the credits page says so and operators grant credit."""
    keys = {
        "STRIPE_SECRET_KEY": settings.STRIPE_SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": settings.STRIPE_WEBHOOK_SECRET,
    }
    missing = [name for name, value in keys.items() if not value]
    if missing:
        return [
            Warning(
                f"{' and '.join(missing)} not set: card top-ups are off (the credits page says "
                "so; operators can grant credit).",
                hint="Set both from the Stripe dashboard to take card payments.",
                id="dragonfly.W001",
            )
        ]
    return []

"""The demo identities `seed_demo` creates and `make run` prints.

The demo key is derived from SECRET_KEY, so it is stable across runs of one installation (seed_demo
stays idempotent) and different on every installation.
"""

import hashlib
import hmac

from django.conf import settings

DEMO_PASSWORD = "dragonfly-demo"
DEMO_BUYER_EMAIL = "buyer@demo.dragonfly.dev"
DEMO_SELLER_EMAIL = "seller@demo.dragonfly.dev"
DEMO_OPERATOR_EMAIL = "operator@demo.dragonfly.dev"
DEMO_MODEL = "deepseek/deepseek-chat"


def demo_password() -> str | None:
    """The demo accounts' password: the public one in the embedded default only.

    Anywhere else (`seed_demo --force` on a database server) the accounts get no usable password;
    an operator sets one with `manage.py changepassword` if they want to sign in.
    """
    return DEMO_PASSWORD if settings.DRAGONFLY_EMBEDDED else None


def demo_public_password_revoke(user) -> None:
    """Outside the embedded default, take the public password away from a demo account that has
    it (created by an older seed_demo, or by one run against this database before)."""
    if demo_password() is None and user.check_password(DEMO_PASSWORD):
        user.set_unusable_password()
        user.save(update_fields=["password"])


def demo_access_key() -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), b"dragonfly demo buyer key", hashlib.sha256)
    return "sk-df-demo" + digest.hexdigest()[: 40 - len("demo")]


def demo_banner(*, base_url: str) -> str:
    key = demo_access_key()
    return f"""
Dragonfly is running.

  Dashboard     {base_url}/dashboard/
  Seller portal {base_url}/seller/
  Admin         {base_url}/admin/
  API base URL  {base_url}/v1

  Demo logins (password: {DEMO_PASSWORD})
    buyer     {DEMO_BUYER_EMAIL}
    seller    {DEMO_SELLER_EMAIL}
    operator  {DEMO_OPERATOR_EMAIL}

  Demo access key: {key}

  Try it:
    curl {base_url}/v1/chat/completions \\
      -H "Authorization: Bearer {key}" \\
      -H "Content-Type: application/json" \\
      -d '{{"model": "{DEMO_MODEL}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Press Ctrl-C to stop.
"""

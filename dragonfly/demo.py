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

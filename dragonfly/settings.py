"""Dragonfly settings, read from the environment.

With nothing set you get the embedded default: SQLite under var/, an in-process Redis substitute,
Celery without a broker service, mail to the console and var/mail/. Set DATABASE_URL and REDIS_URL
for PostgreSQL and Redis. Every variable is listed in .env.example.
"""

import ipaddress
import secrets
from pathlib import Path

import dj_database_url
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

from dragonfly.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DRAGONFLY_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL", "fakeredis://")
# Embedded: no database server configured. Debug output and generated dev secrets follow from it.
DRAGONFLY_EMBEDDED = not DATABASE_URL
DEBUG = env_bool("DEBUG", DRAGONFLY_EMBEDDED)


def _dev_secret(name: str, make) -> str:
    """A secret generated once and kept under var/, for the embedded default only."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DRAGONFLY_EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set")
    SECRET_KEY = _dev_secret("secret_key", lambda: secrets.token_urlsafe(50))

# Seller upstream keys are encrypted with these (see market/crypto.py): "kid:base64key,...",
# the first entry encrypts, all of them decrypt.
DRAGONFLY_ENCRYPTION_KEYS = env_str("DRAGONFLY_ENCRYPTION_KEYS")
if not DRAGONFLY_ENCRYPTION_KEYS:
    if not DRAGONFLY_EMBEDDED:
        raise ImproperlyConfigured(
            "DRAGONFLY_ENCRYPTION_KEYS must be set when DATABASE_URL is set "
            "(generate one with: python manage.py generate_encryption_key)"
        )
    import base64

    DRAGONFLY_ENCRYPTION_KEYS = _dev_secret(
        "encryption_keys", lambda: "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
DRAGONFLY_BASE_URL = env_str("DRAGONFLY_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_htmx",
    "csp",
    "channels",
    "dragonfly",
    "accounts",
    "market",
    "billing",
    "gateway",
    "simulator",
    "live",
]

MIDDLEWARE = [
    "dragonfly.middleware.RequestIdMiddleware",
    "dragonfly.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "dragonfly.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.operator_gate.OperatorGateMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dragonfly.urls"

# What this process serves (docs/deploy.md, "Roles"). `all`, the default, serves every page and
# /v1. `api` serves /v1 and the probes only: the production edge sends /v1 to processes of this
# role (docker/compose.yaml's `api` service). Such a process loads only the apps whose models /v1
# reads, no page, Channels or websocket machinery, and runs under Python's -OO
# (dragonfly/daphne.py): about 15 MB less per process (docs/performance.md, "Optimisations").
DRAGONFLY_ROLE = env_str("DRAGONFLY_ROLE", "all")
if DRAGONFLY_ROLE == "api":
    _API_APPS = {
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "allauth",
        "allauth.account",
        "allauth.mfa",
        "dragonfly",
        "accounts",
        "market",
        "billing",
        "gateway",
    }
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app in _API_APPS]
    _API_MIDDLEWARE = {
        "dragonfly.middleware.RequestIdMiddleware",
        "dragonfly.middleware.ProbeMiddleware",
        "allauth.account.middleware.AccountMiddleware",  # allauth.account's ready() insists on it
    }
    MIDDLEWARE = [name for name in MIDDLEWARE if name in _API_MIDDLEWARE]
    ROOT_URLCONF = "dragonfly.probe_urls"
elif DRAGONFLY_ROLE != "all":
    raise ImproperlyConfigured(f'DRAGONFLY_ROLE must be "all" or "api", not {DRAGONFLY_ROLE!r}')
ASGI_APPLICATION = "dragonfly.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dragonfly.context_processors.site",
            ],
        },
    },
]

# PostgreSQL connections of the control plane (docs/connections.md): never persistent (under
# ASGI a thread per request kept its own connection, one new connection per dashboard request)
# but taken from psycopg's pool in Django, at most DRAGONFLY_DB_POOL_SIZE per process, each
# pinged before it is handed out. The gateway's money path has its own
# async pool (DRAGONFLY_GATEWAY_DB_POOL_SIZE), so a process holds at most the sum of the two.
# DRAGONFLY_DB_POOL_SIZE=0 switches the pool off (a connection per request, closed after it).
DRAGONFLY_DB_POOL_SIZE = env_int("DRAGONFLY_DB_POOL_SIZE", 10)
if DRAGONFLY_DB_POOL_SIZE < 0:
    raise ImproperlyConfigured("DRAGONFLY_DB_POOL_SIZE cannot be negative")
# Seconds a request waits for a pooled connection before it fails (a 500, logged).
DRAGONFLY_DB_POOL_TIMEOUT_SECONDS = env_int("DRAGONFLY_DB_POOL_TIMEOUT_SECONDS", 10)
if DRAGONFLY_DB_POOL_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured("DRAGONFLY_DB_POOL_TIMEOUT_SECONDS must be at least 1")

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DRAGONFLY_DB_POOL_SIZE and DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # Pooled, every connection pinged as it is handed out (db_backends/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "db_backends.postgresql"
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # psycopg_pool's check backs off
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DRAGONFLY_DB_POOL_SIZE,
            "timeout": DRAGONFLY_DB_POOL_TIMEOUT_SECONDS,
            "name": "django",
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "dragonfly.sqlite3"),
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# fakeredis:// is the embedded in-process substitute; redis_clients.clients gives every caller a client.
if REDIS_URL.startswith("fakeredis://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "df",
        }
    }

# The live pages' nudges (live/, docs/accounts.md "Live pages"): across processes through Redis;
# on the embedded default in-process only (a nudge from another process is then lost, and the open
# page sees the change at its next read, DRAGONFLY_LIVE_INTERVAL_SECONDS later).
CHANNEL_LAYERS: dict[str, dict[str, object]]
if DRAGONFLY_EMBEDDED or REDIS_URL.startswith("fakeredis://"):
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Each socket's receive blocks in Redis for 5 s (BZPOPMIN); redis-py's default read
            # timeout is 5 s too, which cut that wait and failed the socket.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": "df:live",
            },
        }
    }
DRAGONFLY_LIVE_INTERVAL_SECONDS = env_int("DRAGONFLY_LIVE_INTERVAL_SECONDS", 2)

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"

# django-allauth (accounts engineer): email login, mandatory verification, no usernames; its rate
# limits use the default cache (Redis outside the embedded default). Hooks: accounts/adapter.py.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # a POST confirms, so mail scanners that fetch links cannot
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Dragonfly] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if DRAGONFLY_BASE_URL.startswith("https") else "http"
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/300s/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/180s/key",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
}
# Second factor (allauth.mfa): TOTP authenticator apps, with recovery codes. Staff must enrol one
# and confirm every login with it before the admin opens (accounts/operator_gate.py); buyers and
# sellers may enrol one too. Failed codes count against allauth's "login_failed" limits.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Dragonfly"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Serve from the apps and static/ too, so a non-debug process without collectstatic still has CSS.
WHITENOISE_USE_FINDERS = True
# Hashed names (css/app.<md5>.css) from collectstatic's manifest in STATIC_ROOT. The image collects
# at build time and sets this, so pages link names whose content never changes and nginx caches
# those for a year (docker/nginx/dragonfly.conf.template). Unset (make run, the tests): plain names.
DRAGONFLY_STATIC_MANIFEST = env_bool("DRAGONFLY_STATIC_MANIFEST", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
        if DRAGONFLY_STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# HTTPS (docs/deploy.md). A https DRAGONFLY_BASE_URL means the site is served over TLS: cookies go
# over https only, browsers are told to stay on https (HSTS), and a plain-http page request that
# reaches Django is redirected. The edge (nginx) terminates TLS and says so in X-Forwarded-Proto,
# believed only with DRAGONFLY_BEHIND_PROXY: the edge sets that header, never passes a client's on.
DRAGONFLY_HTTPS = DRAGONFLY_BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", DRAGONFLY_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", DRAGONFLY_HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if DRAGONFLY_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", DRAGONFLY_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Preloading is the operator's choice, not a default: once the header asks for it anyone may submit
# the domain to the browsers' list, and leaving that list takes months. So Django's reminder is off.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DRAGONFLY_BEHIND_PROXY", False) else None
)
# Content-Security-Policy (django-csp) on every page: scripts and styles only from our own static
# files (no inline code: the playground and the key page load theirs from static/js), fetches only
# to our origin (the playground calls /v1), audio from our origin or a blob: the page made (the
# playground plays the MP3 it fetched from /v1/audio/speech), never framed. Forms post here, or to
# Stripe's Checkout after the top-up form's redirect (form-action covers redirects).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF],
        "style-src": [csp.SELF],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "media-src": [csp.SELF, "blob:"],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "frame-ancestors": [csp.NONE],
        "form-action": [csp.SELF, "https://checkout.stripe.com"],
    }
}

# Mail: SMTP when EMAIL_HOST is set, otherwise the console plus one file per message in var/mail/.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_TIMEOUT = 10
else:
    EMAIL_BACKEND = "mail.backends.ConsoleAndFileBackend"
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Dragonfly <no-reply@dragonfly.local>")

# Celery: the broker is Redis; in the embedded default without a Redis server, tasks run inline.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL.startswith("fakeredis://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {}  # each app adds its periodic tasks in dragonfly/celery.py
# Workers and beat log through LOGGING below (JSON, secrets redacted), never Celery's own setup:
# dragonfly/celery.py answers Celery's setup_logging signal, and the root logger stays ours.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Personal tokens first: an anonymous request gets 401 with WWW-Authenticate: Bearer. The
# permission holds a token to its scopes (accounts/tokens_drf.py); a session may do everything.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.tokens_drf.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.tokens_drf.TokenScopePermission"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Dragonfly management API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
# Where Stripe's API is; only tests point it elsewhere (a Stripe-shaped server on loopback).
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com")

# Dragonfly's own knobs.
DRAGONFLY_SIGNUP_CREDIT_USD = env_str("DRAGONFLY_SIGNUP_CREDIT_USD", "1.00")
# Signup credits granted at verification per UTC day, per client network (an IPv4 address, an IPv6
# /64) and per email domain; past either the account works and its credit waits for an operator
# (docs/signup-credit.md). 0 sends every credit to the operator queue. The exempt domains (big
# free-mail providers, shared by strangers) skip the domain limit, never the address limit.
DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY = env_int("DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY", 3)
DRAGONFLY_SIGNUP_CREDITS_PER_DOMAIN_PER_DAY = env_int(
    "DRAGONFLY_SIGNUP_CREDITS_PER_DOMAIN_PER_DAY", 20
)
if min(DRAGONFLY_SIGNUP_CREDITS_PER_IP_PER_DAY, DRAGONFLY_SIGNUP_CREDITS_PER_DOMAIN_PER_DAY) < 0:
    raise ImproperlyConfigured("DRAGONFLY_SIGNUP_CREDITS_PER_*_PER_DAY cannot be negative")
DRAGONFLY_SIGNUP_CREDIT_EXEMPT_DOMAINS = env_list(
    "DRAGONFLY_SIGNUP_CREDIT_EXEMPT_DOMAINS",
    [
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
        "naver.com",
    ],
)
DRAGONFLY_DEFAULT_FEE_BPS = env_int("DRAGONFLY_DEFAULT_FEE_BPS", 1000)
# Holds and settlements through the PostgreSQL functions (billing/services/fastpath.py); False
# forces the ORM path, which SQLite always takes. Tests switch it.
DRAGONFLY_BILLING_SQL_FASTPATH = True
DRAGONFLY_MAX_BODY_BYTES = env_int("DRAGONFLY_MAX_BODY_BYTES", 4 * 1024 * 1024)
# An `api` process closes a client connection idle this long between requests
# (dragonfly/api_http.py): longer than the edge's nginx keeps its own (60 s), so nginx lets go first.
DRAGONFLY_IDLE_CONNECTION_SECONDS = env_int("DRAGONFLY_IDLE_CONNECTION_SECONDS", 75)
if DRAGONFLY_IDLE_CONNECTION_SECONDS < 1:
    raise ImproperlyConfigured("DRAGONFLY_IDLE_CONNECTION_SECONDS must be at least 1")
DRAGONFLY_HOLD_TTL_SECONDS = env_int("DRAGONFLY_HOLD_TTL_SECONDS", 900)
# Balance leases (gateway/balance_leases.py): a busy buyer's requests draw their worst case from
# one hold of this many times it (0: every request places its own hold), taking draws for this
# many seconds, placed only while the wallet's available balance is this many times the lease.
DRAGONFLY_BALANCE_LEASE_REQUESTS = env_int("DRAGONFLY_BALANCE_LEASE_REQUESTS", 256)
DRAGONFLY_BALANCE_LEASE_SECONDS = env_int("DRAGONFLY_BALANCE_LEASE_SECONDS", 5)
DRAGONFLY_BALANCE_LEASE_HEADROOM = env_int("DRAGONFLY_BALANCE_LEASE_HEADROOM", 10)
# A capacity slot whose request ended stays in this process's share of the listing, for its next
# request, until a second passes unused (gateway/capacity_shares.py); False: given back at once.
DRAGONFLY_CAPACITY_SHARES = env_bool("DRAGONFLY_CAPACITY_SHARES", True)
# Buyer disputes (billing policy rule 12): how long after settlement a request may be disputed, and
# per buyer at most this many undecided at once and this many opened in 24 hours.
DRAGONFLY_DISPUTE_WINDOW_DAYS = env_int("DRAGONFLY_DISPUTE_WINDOW_DAYS", 7)
DRAGONFLY_DISPUTES_OPEN_MAX = env_int("DRAGONFLY_DISPUTES_OPEN_MAX", 5)
DRAGONFLY_DISPUTES_PER_DAY = env_int("DRAGONFLY_DISPUTES_PER_DAY", 10)
# A gateway process renews its lease every quarter of this; one silent for this long is dead and
# its peers settle what it left: holds, capacity slots, streams (gateway/process.py).
DRAGONFLY_PROCESS_LEASE_SECONDS = env_int("DRAGONFLY_PROCESS_LEASE_SECONDS", 20)
DRAGONFLY_ROUTING_REFRESH_SECONDS = env_int("DRAGONFLY_ROUTING_REFRESH_SECONDS", 3)
DRAGONFLY_KEY_CACHE_SECONDS = env_int("DRAGONFLY_KEY_CACHE_SECONDS", 3)
# Requests per client address and minute that end in a 401 (no valid key); past it, 429 before any
# key lookup (gateway/client_limits.py).
DRAGONFLY_UNAUTHENTICATED_PER_MINUTE = env_int("DRAGONFLY_UNAUTHENTICATED_PER_MINUTE", 60)
DRAGONFLY_PROBE_INTERVAL_SECONDS = env_int("DRAGONFLY_PROBE_INTERVAL_SECONDS", 60)
# Authenticity probes (docs/health.md): each active chat listing about this often (±20 %), a few
# dozen tokens the seller pays per chat model; 0 turns them off. A failure is asked again after
# DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS; a second failure suspends the listing.
DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS = env_int("DRAGONFLY_AUTHENTICITY_INTERVAL_SECONDS", 21600)
DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS = env_int("DRAGONFLY_AUTHENTICITY_RECHECK_SECONDS", 300)
DRAGONFLY_UPSTREAM_CONNECT_TIMEOUT = env_int("DRAGONFLY_UPSTREAM_CONNECT_TIMEOUT", 5)
DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT = env_int("DRAGONFLY_UPSTREAM_FIRST_TOKEN_TIMEOUT", 60)
DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT = env_int("DRAGONFLY_UPSTREAM_TOTAL_TIMEOUT", 600)
DRAGONFLY_MAX_ATTEMPTS = env_int("DRAGONFLY_MAX_ATTEMPTS", 3)
# Requests per gateway process between their body and their upstream call at once (the rest wait
# in arrival order; gateway/admission.py). At least 1.
DRAGONFLY_GATEWAY_ADMISSION = env_int("DRAGONFLY_GATEWAY_ADMISSION", 8)
if DRAGONFLY_GATEWAY_ADMISSION < 1:
    raise ImproperlyConfigured("DRAGONFLY_GATEWAY_ADMISSION must be at least 1")
# Settlements per gateway process that may wait for their batch before a request waits for its
# admission turn until one lands (gateway/admission.py). At least 1.
DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG = env_int("DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG", 1000)
if DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG < 1:
    raise ImproperlyConfigured("DRAGONFLY_GATEWAY_SETTLEMENT_BACKLOG must be at least 1")
# One billed /v1 request in this many is timed step by step (gateway/stages.py); 0: none.
DRAGONFLY_GATEWAY_STAGE_SAMPLE = env_int("DRAGONFLY_GATEWAY_STAGE_SAMPLE", 16)
if DRAGONFLY_GATEWAY_STAGE_SAMPLE < 0:
    raise ImproperlyConfigured("DRAGONFLY_GATEWAY_STAGE_SAMPLE must be 0 or more")
# PostgreSQL connections per gateway process for holds and settlements (async, on the event loop).
DRAGONFLY_GATEWAY_DB_POOL_SIZE = env_int("DRAGONFLY_GATEWAY_DB_POOL_SIZE", 10)
# Redis connections per process and event loop (the gateway's rate limits, capacity, stickiness).
DRAGONFLY_REDIS_POOL_SIZE = env_int("DRAGONFLY_REDIS_POOL_SIZE", 64)
DRAGONFLY_SIMULATOR_URL = env_str("DRAGONFLY_SIMULATOR_URL", "http://127.0.0.1:9100")
# Addresses or networks (CIDR) that may read /metrics without an operator login.
DRAGONFLY_METRICS_ALLOWED_IPS = env_list("DRAGONFLY_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
for _entry in DRAGONFLY_METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_entry, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DRAGONFLY_METRICS_ALLOWED_IPS: {exc}") from exc
DRAGONFLY_LOG_FORMAT = env_str("DRAGONFLY_LOG_FORMAT", "text" if DEBUG else "json")
DRAGONFLY_LOG_LEVEL = env_str("DRAGONFLY_LOG_LEVEL", "INFO")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "observability.logs.RequestIdFilter"},
        "redact": {"()": "observability.logs.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {"()": "observability.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id", "redact"],
            "formatter": DRAGONFLY_LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": DRAGONFLY_LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}

# Redis on the /v1 path (docs/gateway.md, "When Redis is down"): seconds to connect and per reply
# before the gateway serves without Redis, and the number of gateway processes, whose per-process
# rate-limit counters then allow each 1/N of a plan so the fleet stays within it.
try:
    DRAGONFLY_REDIS_TIMEOUT_SECONDS = float(env_str("DRAGONFLY_REDIS_TIMEOUT_SECONDS", "0.25"))
except ValueError as exc:
    raise ImproperlyConfigured(f"DRAGONFLY_REDIS_TIMEOUT_SECONDS must be a number: {exc}") from exc
if not DRAGONFLY_REDIS_TIMEOUT_SECONDS > 0:
    raise ImproperlyConfigured("DRAGONFLY_REDIS_TIMEOUT_SECONDS must be above 0")
DRAGONFLY_GATEWAY_PROCESSES = env_int("DRAGONFLY_GATEWAY_PROCESSES", 1)
if DRAGONFLY_GATEWAY_PROCESSES < 1:
    raise ImproperlyConfigured("DRAGONFLY_GATEWAY_PROCESSES must be at least 1")

# Our own error pages (dragonfly/error_views.py; handler404/handler500 are in dragonfly/urls.py).
CSRF_FAILURE_VIEW = "dragonfly.error_views.csrf_failure"

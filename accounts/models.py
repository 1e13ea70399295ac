"""Buyers and sellers (one User model), plans, routing profiles, access keys, personal tokens."""

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An email address is required")
        from accounts.emails import email_canonicalize

        email = self.normalize_email(email)
        extra.setdefault("email_canonical", email_canonicalize(email))
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class Plan(models.Model):
    """A rate-limit tier. A null limit means unlimited (Enterprise)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=50)
    rank = models.PositiveSmallIntegerField(unique=True, help_text="Higher ranks unlock later.")
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    min_lifetime_topup_nusd = models.BigIntegerField(
        default=0, help_text="Lifetime top-ups (nano-USD) that unlock this plan."
    )
    min_lifetime_spend_nusd = models.BigIntegerField(
        default=0, help_text="Lifetime spend (nano-USD) that unlocks this plan, as top-ups do."
    )
    automatic = models.BooleanField(
        default=True,
        help_text="Unlocked by lifetime top-ups or spend. Off: only an operator override grants it.",
    )

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_lifetime_topup_nusd__gte=0), name="plan_threshold_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(min_lifetime_spend_nusd__gte=0), name="plan_spend_threshold_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    username = None  # type: ignore[assignment]  # email is the login
    email = models.EmailField("email address", unique=True)
    # The address with case, dots and +tags folded (see docs/signup-credit.md); one credit per value.
    email_canonical = models.CharField(max_length=254, blank=True, db_index=True)
    # The client address of the signup request (REMOTE_ADDR: behind nginx, Daphne's --proxy-headers
    # makes it the real client). Null for accounts made outside a signup (operators, the demo seed).
    signup_ip = models.GenericIPAddressField(null=True, blank=True, unpack_ipv4=True)
    plan_override = models.ForeignKey(
        Plan,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Operator override; otherwise the plan follows lifetime top-ups and spend.",
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []  # type: ignore[misc]  # email is already required

    objects = UserManager()  # type: ignore[misc, assignment]

    def __str__(self) -> str:
        return self.email


class RoutingStrategy(models.TextChoices):
    MARKET_ONLY = "market-only", "market-only"


class PrivacyMode(models.TextChoices):
    ANY = "", "any listing"
    TRUSTED_ONLY = "trusted_only", "trusted_only"


class RoutingProfile(models.Model):
    """Defaults for every routing header; a request header overrides the profile field.

    Prices are nano-USD per million tokens, like the catalogue. Null means "no constraint".
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="routing_profiles")
    name = models.CharField(max_length=80)
    strategy = models.CharField(
        max_length=32, choices=RoutingStrategy.choices, default=RoutingStrategy.MARKET_ONLY
    )
    max_input_price_nusd = models.BigIntegerField(null=True, blank=True)
    max_output_price_nusd = models.BigIntegerField(null=True, blank=True)
    soft_max_ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    hard_max_ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    soft_min_tps = models.PositiveIntegerField(null=True, blank=True)
    hard_min_tps = models.PositiveIntegerField(null=True, blank=True)
    privacy_mode = models.CharField(
        max_length=20, choices=PrivacyMode.choices, default="", blank=True
    )
    provider_only = models.JSONField(default=list, blank=True)
    provider_ignore = models.JSONField(default=list, blank=True)
    provider_order = models.JSONField(default=list, blank=True)
    aliases_enabled = models.BooleanField(default=False)
    model_aliases = models.JSONField(
        default=dict, blank=True, help_text="requested name → model id"
    )
    default_model = models.CharField(
        max_length=100,
        blank=True,
        help_text="Model id used for unknown names (when aliases are on).",
    )
    strict_models = models.BooleanField(
        default=False,
        help_text="Unknown model names stay 400: no built-in aliases (gpt-4o, claude-sonnet-4-6, "
        "…) and no platform default model.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="profile_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name


class AccessKey(models.Model):
    """A buyer's `sk-df-…` key. Only the lookup prefix and the SHA-256 of the whole key are kept."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=24, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    profile = models.ForeignKey(
        RoutingProfile, on_delete=models.PROTECT, related_name="access_keys"
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    spend_limit_nusd = models.BigIntegerField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=Q(revoked_at__isnull=True),
                name="live_key_name_per_user",
            ),
            models.CheckConstraint(
                condition=Q(spend_limit_nusd__isnull=True) | Q(spend_limit_nusd__gt=0),
                name="key_spend_limit_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class TokenScope(models.TextChoices):
    """What a personal token may do on /api/ (accounts/tokens_drf.py enforces it)."""

    READ = "read", "read: account, keys, profiles and usage"
    KEYS_WRITE = "keys:write", "keys:write: create and revoke access keys"
    PROFILES_WRITE = "profiles:write", "profiles:write: create, change and delete routing profiles"
    DISPUTES_WRITE = "disputes:write", "disputes:write: dispute a settled request"


class PersonalToken(models.Model):
    """A `df-pat-…` token for the management API (/api/), for scripts. Like an access key, only the
    lookup prefix and the SHA-256 of the whole token are kept; `scopes` lists TokenScope values."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="personal_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=24, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=Q(revoked_at__isnull=True),
                name="live_token_name_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class OperatorAudit(models.Model):
    """One change to a field whose change an operator must be able to trace (a provider's API base
    URL: where every buyer's prompt goes): who, when, the old and the new value. Append-only;
    written by accounts.audit, shown read-only in the admin."""

    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(
        max_length=254, help_text="The operator's address then, or the command that changed it."
    )
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    field = models.CharField(max_length=60)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "operator audit entry"
        verbose_name_plural = "operator audit"
        indexes = [models.Index(fields=["object_type", "object_id", "-at"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id} {self.field} by {self.actor_label}"

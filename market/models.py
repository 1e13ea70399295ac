"""The catalogue (operators'), sellers' listings with encrypted keys, Trading Terms, and the
history of health and authenticity probes.

Prices are nano-USD (1e-9 USD) per million units: tokens for text models, characters for speech.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

# Request fields the gateway itself sets from the buyer's request and the hold; a model's
# upstream_params may not replace them.
GATEWAY_OWNED_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n"}
)


def validate_upstream_params(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Give a JSON object, e.g. {"thinking": {"type": "enabled"}}.')
    owned = sorted(GATEWAY_OWNED_FIELDS & set(value))
    if owned:
        raise ValidationError(f"The gateway sets {', '.join(owned)} itself; leave them out.")


class WireFormat(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    MINIMAX = "minimax", "MiniMax"


class Provider(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=80)
    base_url = models.URLField(
        help_text="Set by operators only; sellers never choose where calls go."
    )
    wire_format = models.CharField(
        max_length=16, choices=WireFormat.choices, default=WireFormat.OPENAI
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Modality(models.TextChoices):
    CHAT = "chat", "chat"
    EMBEDDING = "embedding", "embedding"
    RERANK = "rerank", "rerank"
    SPEECH = "speech", "speech"


class PriceUnit(models.TextChoices):
    TOKEN = "token", "per million tokens"
    CHARACTER = "character", "per million characters"


class CatalogModel(models.Model):
    model_id = models.CharField(
        max_length=100, unique=True, help_text="e.g. deepseek/deepseek-chat"
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    upstream_name = models.CharField(max_length=100)
    upstream_params = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_upstream_params],
        help_text="Fields set on every upstream request for this model, over the buyer's "
        '(e.g. DeepSeek V4\'s {"thinking": {"type": "enabled"}}).',
    )
    display_name = models.CharField(max_length=100, blank=True)
    context_tokens = models.PositiveIntegerField(null=True, blank=True)
    capabilities = models.JSONField(default=list, blank=True)
    modality = models.CharField(max_length=16, choices=Modality.choices, default=Modality.CHAT)
    price_unit = models.CharField(max_length=16, choices=PriceUnit.choices, default=PriceUnit.TOKEN)
    list_input_nusd = models.BigIntegerField(help_text="List price, nano-USD per million units.")
    list_output_nusd = models.BigIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    probe_prompt_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The prompt_tokens this model's upstream reports for the authenticity probe's "
        "fixed prompt (its tokenizer's fingerprint, docs/health.md). Empty: not checked until a "
        "trusted listing's probe records it.",
    )
    probe_fingerprint = models.JSONField(
        null=True,
        blank=True,
        help_text="What this model answers the authenticity probe's fixed request, beyond the "
        "token count: an embedding's vector head, a ranking's scores, speech's billed characters "
        "and length (market/authenticity_asks.py). Empty: learned from a trusted listing.",
    )
    platform_default = models.BooleanField(
        default=False,
        help_text="Unknown model names sent to this model's endpoint go to it (one per modality; "
        "a buyer's strict profile keeps them a 400). Admin action: make platform default.",
    )

    class Meta:
        ordering = ["model_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(list_input_nusd__gte=0) & Q(list_output_nusd__gte=0),
                name="list_prices_nonneg",
            ),
            models.UniqueConstraint(
                fields=["modality"],
                condition=Q(platform_default=True),
                name="one_platform_default_per_modality",
            ),
        ]

    def __str__(self) -> str:
        return self.model_id


class ListingStatus(models.TextChoices):
    PENDING = "pending", "pending verification"
    ACTIVE = "active", "active"
    REJECTED = "rejected", "rejected"
    PAUSED = "paused", "paused by seller"
    SUSPENDED = "suspended", "suspended"
    DELETED = "deleted", "deleted"


class Listing(models.Model):
    """A seller's upstream key offered on the market. The key is only ever stored encrypted."""

    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="listings"
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="listings")
    name = models.CharField(max_length=80)
    status = models.CharField(
        max_length=16, choices=ListingStatus.choices, default=ListingStatus.PENDING
    )
    status_reason = models.TextField(blank=True)
    key_ciphertext = models.BinaryField(editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    key_last4 = models.CharField(max_length=4, editable=False)
    concurrency_cap = models.PositiveIntegerField(default=8)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    daily_spend_cap_nusd = models.BigIntegerField(null=True, blank=True)
    trusted = models.BooleanField(
        default=False, help_text="Operators only: eligible for trusted_only."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class ListingModel(models.Model):
    """One model a listing serves, at the seller's ask (at most the list price)."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="offers")
    model = models.ForeignKey(CatalogModel, on_delete=models.PROTECT, related_name="offers")
    ask_input_nusd = models.BigIntegerField()
    ask_output_nusd = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["listing", "model"], name="one_offer_per_model"),
            models.CheckConstraint(
                condition=Q(ask_input_nusd__gte=0) & Q(ask_output_nusd__gte=0), name="asks_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} on listing #{self.listing_id}"


class TermsAudience(models.TextChoices):
    BUYER = "buyer", "buyers"
    SELLER = "seller", "sellers"


class TermsVersion(models.Model):
    audience = models.CharField(max_length=8, choices=TermsAudience.choices)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["audience", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["audience", "version"], name="one_terms_version")
        ]

    def __str__(self) -> str:
        return f"{self.get_audience_display()} terms v{self.version}"


class TermsAcceptance(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terms_acceptances"
    )
    terms = models.ForeignKey(TermsVersion, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "terms"], name="accept_terms_once")]

    def __str__(self) -> str:
        return f"{self.user_id} accepted {self.terms}"


class HealthSource(models.TextChoices):
    PROBE = "probe", "active probe"
    PASSIVE = "passive", "live traffic"


class HealthSample(models.Model):
    """History of probes and notable passive signals (the live state lives in Redis)."""

    listing = models.ForeignKey(Listing, on_delete=models.CASCADE, related_name="health_samples")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=8, choices=HealthSource.choices)
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["listing", "-at"], name="health_listing_recent")]

    def __str__(self) -> str:
        return f"listing #{self.listing_id} {'ok' if self.ok else 'failed'} at {self.at:%Y-%m-%d %H:%M}"


class Verdict(models.TextChoices):
    PASSED = "passed", "passed"
    FAILED = "failed", "failed"
    INCONCLUSIVE = "inconclusive", "inconclusive"


class AuthenticityCheck(models.Model):
    """One known-answer probe of one model on a listing: what was asked, expected and answered.

    Never holds the upstream key; `prompt` is the modality's fixed probe text, the same for every
    listing; `*_prompt_tokens` are the input tokens it cost (market/authenticity_asks.py)."""

    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="authenticity_checks"
    )
    model = models.ForeignKey(
        CatalogModel, on_delete=models.PROTECT, related_name="authenticity_checks"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    prompt = models.CharField(max_length=300)
    asked_model = models.CharField(max_length=100)
    answered_model = models.CharField(max_length=100, blank=True)
    expected_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    answered_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    expected_fingerprint = models.JSONField(null=True, blank=True)
    answered_fingerprint = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["listing", "model", "-at"], name="authenticity_listing_recent")
        ]

    def __str__(self) -> str:
        return f"{self.model_id} on listing #{self.listing_id}: {self.verdict}"


class RouteOutcome(models.Model):
    """How many requests for a model one listing offers it won or lost in one minute, and why
    (market/route_outcomes.py holds the reasons). The gateway counts them where it decides
    (gateway/route_outcomes.py) and adds each process's counts here in one statement per flush;
    rows are kept RETENTION_DAYS (route_outcomes_prune)."""

    # Indexed by the unique constraint's leading column, not on its own.
    listing = models.ForeignKey(
        Listing, on_delete=models.CASCADE, related_name="route_outcomes", db_index=False
    )
    minute = models.DateTimeField()
    model_id = models.CharField(max_length=100)  # CatalogModel.model_id
    reason = models.CharField(max_length=32)
    requests = models.BigIntegerField()

    class Meta:
        constraints = [
            # The upsert's conflict target; its leading (listing, minute) serves the page's reads.
            models.UniqueConstraint(
                fields=["listing", "minute", "model_id", "reason"], name="one_outcome_per_minute"
            )
        ]
        indexes = [models.Index(fields=["minute"], name="route_outcome_minute")]  # the prune

    def __str__(self) -> str:
        return f"listing #{self.listing_id} {self.reason} x{self.requests} at {self.minute:%H:%M}"

"""Ledger accounts, transactions and entries, holds, fee profiles, usage records, top-ups, payouts.

Every amount is an int of nano-USD (`_nusd`, see docs/money.md). Ledger entries are append-only and
each transaction sums to zero: the services enforce it, and on PostgreSQL so do triggers
(migration 0002). A wallet's balance is the sum of its entries; `balance_nusd` caches it.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual

from billing.money import format_usd


class AccountKind(models.TextChoices):
    WALLET = "wallet", "buyer wallet"
    EARNINGS = "earnings", "seller earnings"
    FEE_REVENUE = "fee_revenue", "platform fee revenue"
    PROMOTIONS = "promotions", "promotions"
    STRIPE_CLEARING = "stripe_clearing", "Stripe clearing"
    OVERRUN = "overrun", "overrun (cost above the hold)"
    PAYOUTS_PENDING = "payouts_pending", "payouts pending"
    PAYOUTS_CLEARING = "payouts_clearing", "payouts paid out"
    ADJUSTMENTS = "adjustments", "operator adjustments"
    CHARGEBACKS = "chargebacks", "Stripe disputes (chargebacks)"


USER_ACCOUNT_KINDS = {AccountKind.WALLET, AccountKind.EARNINGS}


class LedgerAccount(models.Model):
    """One ledger account: a user's wallet or earnings, or one of the platform's accounts.

    Sign convention: a positive balance is what the platform owes the account's owner (a wallet,
    earnings, fee revenue); platform counter-accounts (promotions, Stripe clearing, overrun) go
    negative as money flows out of them. All balances together always sum to zero.
    """

    kind = models.CharField(max_length=20, choices=AccountKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
    )
    balance_nusd = models.BigIntegerField(default=0, help_text="Cached sum of entries.")
    held_nusd = models.BigIntegerField(default=0, help_text="Reserved by active holds (wallets).")
    spent_nusd = models.BigIntegerField(
        db_default=0, help_text="Wallets: lifetime debits for requests, less refunded ones."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "user"],
                condition=Q(user__isnull=False),
                name="one_account_per_user",
            ),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(user__isnull=True), name="one_platform_account"
            ),
            models.CheckConstraint(
                condition=Q(
                    user__isnull=True,
                    kind__in=[
                        "fee_revenue",
                        "promotions",
                        "stripe_clearing",
                        "overrun",
                        "payouts_pending",
                        "payouts_clearing",
                        "adjustments",
                        "chargebacks",
                    ],
                )
                | Q(user__isnull=False, kind__in=["wallet", "earnings"]),
                name="account_owner_matches_kind",
            ),
            models.CheckConstraint(condition=Q(held_nusd__gte=0), name="held_nonneg"),
            # A wallet's available balance (balance - held) never goes below zero while anything
            # is held. Only a Stripe refund or dispute of a top-up takes a wallet below zero, and
            # it voids the wallet's holds first (billing/services/reversals.py); no hold can be
            # placed on a negative wallet, so "negative" always means "nothing held".
            models.CheckConstraint(
                condition=~Q(kind="wallet") | Q(balance_nusd__gte=F("held_nusd")) | Q(held_nusd=0),
                name="wallet_available_nonneg_unless_reversed",
            ),
        ]
        permissions = [
            ("adjust_wallet", "Can adjust a buyer's wallet"),
            ("grant_credit", "Can grant promotional credit"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_kind_display()} of {self.user}" if self.user_id else self.get_kind_display()
        )

    @property
    def available_nusd(self) -> int:
        return self.balance_nusd - self.held_nusd


class TransactionKind(models.TextChoices):
    SETTLEMENT = "settlement", "request settlement"
    REFUND = "refund", "request refund"
    TOPUP = "topup", "Stripe top-up"
    SIGNUP_CREDIT = "signup_credit", "signup credit"
    GRANT = "grant", "operator credit grant"
    ADJUSTMENT = "adjustment", "operator adjustment"
    PAYOUT_REQUEST = "payout_request", "payout requested"
    PAYOUT_PAID = "payout_paid", "payout paid"
    PAYOUT_REJECTED = "payout_rejected", "payout rejected"
    STRIPE_REFUND = "stripe_refund", "Stripe refund of a top-up"
    CHARGEBACK = "chargeback", "Stripe dispute of a top-up"


class LedgerTransaction(models.Model):
    """One balanced money movement. `idempotency_key` makes every posting happen at most once."""

    kind = models.CharField(max_length=20, choices=TransactionKind.choices)
    idempotency_key = models.CharField(max_length=200)
    memo = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        # Declared here rather than as unique=True / db_index=True on the fields: on PostgreSQL
        # those also build a second, LIKE-pattern index per column, which nothing queries and every
        # posting would pay for (docs/performance.md, "Optimisations").
        indexes = [models.Index(fields=["request_id"], name="txn_request_id")]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="txn_one_per_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}"


class LedgerEntry(models.Model):
    """One signed line of a transaction. Append-only: never updated, never deleted."""

    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    # No index of its own: entry_account_recent (account, -id) serves every lookup by account.
    account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    amount_nusd = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "-id"], name="entry_account_recent")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount_nusd=0), name="entry_nonzero"),
        ]

    def __str__(self) -> str:
        sign = "+" if self.amount_nusd > 0 else ""  # format_usd writes the minus
        return f"{sign}{format_usd(self.amount_nusd)} on account #{self.account_id}"


class HoldStatus(models.TextChoices):
    ACTIVE = "active", "active"
    SETTLED = "settled", "settled"
    VOIDED = "voided", "voided"


class Hold(models.Model):
    """Funds reserved on a wallet for one request, from before the upstream call until settlement."""

    request_id = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="holds")
    amount_nusd = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=HoldStatus.choices, default=HoldStatus.ACTIVE)
    void_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="active"), name="hold_active_age"
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_nusd__gt=0), name="hold_positive"),
            # Not unique=True: see LedgerTransaction.Meta.
            models.UniqueConstraint(fields=["request_id"], name="hold_one_per_request"),
        ]

    def __str__(self) -> str:
        return f"hold {self.request_id} ({self.status})"


class FeeProfile(models.Model):
    """The platform's share of a seller's proceeds, in basis points."""

    name = models.CharField(max_length=80, unique=True)
    fee_bps = models.PositiveIntegerField(validators=[MaxValueValidator(10_000)])
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(fee_bps__lte=10_000), name="fee_bps_range"),
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_fee_profile"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fee_bps / 100:g}%)"


class SellerFeeOverride(models.Model):
    """An operator's choice of fee profile for one seller."""

    seller = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fee_override"
    )
    fee_profile = models.ForeignKey(FeeProfile, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.seller} → {self.fee_profile}"


class Outcome(models.TextChoices):
    COMPLETED = "completed", "completed"
    CLIENT_DISCONNECTED = "client_disconnected", "client disconnected"
    UPSTREAM_FAILED = "upstream_failed", "upstream failed"


class UsageRecord(models.Model):
    """One settled request. cost = buyer_debit + overrun = seller_credit + fee, exactly."""

    request_id = models.CharField(max_length=100)
    # buyer and seller: no index of their own, usage_buyer_recent / usage_seller_recent lead with them.
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
    )
    access_key_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    listing = models.ForeignKey(
        "market.Listing",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_records",
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="sales_records",
        db_index=False,
    )
    model_id = models.CharField(max_length=100)
    upstream_model = models.CharField(max_length=100, blank=True)
    price_unit = models.CharField(max_length=16, default="token")
    ask_input_nusd = models.BigIntegerField()
    ask_output_nusd = models.BigIntegerField()
    input_units = models.BigIntegerField()
    output_units = models.BigIntegerField()
    cost_nusd = models.BigIntegerField()
    buyer_debit_nusd = models.BigIntegerField()
    overrun_nusd = models.BigIntegerField(default=0)
    seller_credit_nusd = models.BigIntegerField()
    fee_nusd = models.BigIntegerField()
    fee_bps = models.PositiveIntegerField()
    fee_profile = models.ForeignKey(
        FeeProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    streamed = models.BooleanField(default=False)
    outcome = models.CharField(max_length=24, choices=Outcome.choices)
    route = models.JSONField(
        null=True,
        blank=True,
        help_text="The model asked, how it resolved, each listing tried, why it failed over.",
    )
    transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="usage"
    )
    refunded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # SLA refunds (billing.pricing.sla_breached, decided once, at settlement): the promise the
    # request was admitted under, whether its listing broke it, and what it would have cost then
    # (every money column above is 0).
    sla_max_ttft_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The time-to-first-token promise (ms) the request was admitted under.",
    )
    sla_breached = models.BooleanField(
        db_default=False,
        help_text="The listing's first token came later than promised: not charged.",
    )
    sla_waived_nusd = models.BigIntegerField(
        db_default=0, help_text="The cost not charged because the listing broke the SLA."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("refund_usagerecord", "Can refund a settled request")]
        indexes = [
            models.Index(fields=["buyer", "-created_at"], name="usage_buyer_recent"),
            models.Index(fields=["seller", "-created_at"], name="usage_seller_recent"),
        ]
        constraints = [
            # Not unique=True: see LedgerTransaction.Meta.
            models.UniqueConstraint(fields=["request_id"], name="usage_one_per_request"),
            models.CheckConstraint(
                condition=Q(sla_breached=False, sla_waived_nusd=0)
                | Q(
                    sla_breached=True,
                    sla_waived_nusd__gte=0,
                    cost_nusd=0,
                    sla_max_ttft_ms__isnull=False,
                ),
                name="usage_sla_breach_costs_nothing",
            ),
            models.CheckConstraint(
                condition=Q(cost_nusd=F("seller_credit_nusd") + F("fee_nusd"))
                & Q(cost_nusd=F("buyer_debit_nusd") + F("overrun_nusd")),
                name="usage_balanced",
            ),
            models.CheckConstraint(
                condition=Q(cost_nusd__gte=0)
                & Q(buyer_debit_nusd__gte=0)
                & Q(overrun_nusd__gte=0)
                & Q(seller_credit_nusd__gte=0)
                & Q(fee_nusd__gte=0)
                & Q(input_units__gte=0)
                & Q(output_units__gte=0)
                & Q(ask_input_nusd__gte=0)
                & Q(ask_output_nusd__gte=0),
                name="usage_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return self.request_id


class SignupGrant(models.Model):
    """The one signup credit per canonical email address."""

    email_canonical = models.CharField(max_length=254, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    amount_nusd = models.BigIntegerField()
    transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email_canonical


class SignupLimit(models.TextChoices):
    """The daily limits on signup credits granted at verification (docs/signup-credit.md)."""

    ADDRESS = "address", "per client address (IPv4, or IPv6 /64) per day"
    DOMAIN = "domain", "per email domain per day"


class SignupCreditStatus(models.TextChoices):
    GRANTED = "granted", "granted at verification"
    PENDING = "pending", "waiting for an operator"
    APPROVED = "approved", "approved by an operator"
    REJECTED = "rejected", "rejected by an operator"


class SignupCreditRequest(models.Model):
    """The decision on one canonical address's signup credit: granted at verification, or held
    for an operator because a daily limit was full. The money itself is the SignupGrant."""

    email_canonical = models.CharField(max_length=254, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signup_network = models.CharField(
        max_length=64, blank=True, help_text="The signup's IPv4 address or IPv6 /64; blank if none."
    )
    email_domain = models.CharField(max_length=254, blank=True)
    status = models.CharField(
        max_length=8, choices=SignupCreditStatus.choices, default=SignupCreditStatus.GRANTED
    )
    held_by = models.CharField(
        max_length=8, choices=SignupLimit.choices, blank=True, help_text="The limit that was full."
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("decide_signupcreditrequest", "Can approve or reject a held signup credit")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="pending") | ~Q(held_by=""),
                name="signup_credit_pending_has_limit",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email_canonical} ({self.status})"


class SignupCreditQuota(models.Model):
    """Signup credits granted at verification for one client network or email domain on one UTC
    day. The row is the lock: a conditional UPDATE takes a slot only while `used` is below the
    limit, so concurrent verifications cannot both take the last one."""

    scope = models.CharField(max_length=8, choices=SignupLimit.choices)
    key = models.CharField(max_length=254)
    day = models.DateField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "day"], name="signup_quota_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} on {self.day}: {self.used}"


class TopUpStatus(models.TextChoices):
    PENDING = "pending", "pending"
    PAID = "paid", "paid"
    FAILED = "failed", "failed"


class TopUp(models.Model):
    """A Stripe Checkout top-up; fulfilled once per Checkout Session, for Stripe's amount_total."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topups"
    )
    requested_nusd = models.BigIntegerField()
    amount_nusd = models.BigIntegerField(default=0, help_text="Credited: Stripe's amount_total.")
    stripe_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # The Checkout Session's PaymentIntent, saved at fulfilment: Stripe's refunds and disputes
    # name the charge's PaymentIntent, never the session.
    stripe_payment_intent = models.CharField(max_length=255, null=True, blank=True, unique=True)
    status = models.CharField(
        max_length=8, choices=TopUpStatus.choices, default=TopUpStatus.PENDING
    )
    transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(requested_nusd__gt=0), name="topup_positive"),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(amount_nusd__gt=0, transaction__isnull=False),
                name="topup_paid_has_money",
            ),
        ]

    def __str__(self) -> str:
        return f"top-up #{self.pk} ({self.status})"


class PayoutStatus(models.TextChoices):
    REQUESTED = "requested", "requested"
    APPROVED = "approved", "approved"
    PAID = "paid", "paid"
    REJECTED = "rejected", "rejected"


class Payout(models.Model):
    """A seller's request to be paid their earnings; each step is a ledger transaction."""

    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts"
    )
    amount_nusd = models.BigIntegerField()
    status = models.CharField(
        max_length=10, choices=PayoutStatus.choices, default=PayoutStatus.REQUESTED
    )
    note = models.CharField(max_length=300, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        permissions = [
            ("approve_payout", "Can approve a payout"),
            ("pay_payout", "Can mark a payout paid"),
            ("reject_payout", "Can reject a payout"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_nusd__gt=0), name="payout_positive")
        ]

    def __str__(self) -> str:
        return f"payout #{self.pk} ({self.status})"


class ReversalKind(models.TextChoices):
    REFUND = "refund", "refund"
    DISPUTE = "dispute", "dispute (chargeback)"


class StripeReversal(models.Model):
    """Money Stripe took back from a top-up (a refund, or a dispute when it is opened), booked
    once per Stripe event as a debit of the buyer's wallet, which may go below zero.

    `reported_nusd` is what this event adds to the amount Stripe took back (a refund event carries
    the charge's cumulative refunded amount; the difference is new); `debited_nusd` is what left
    the wallet: never more than is left of the top-up after earlier reversals."""

    event_id = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=8, choices=ReversalKind.choices)
    stripe_object_id = models.CharField(
        max_length=255, help_text="The refunded charge, or the dispute."
    )
    topup = models.ForeignKey(TopUp, on_delete=models.PROTECT, related_name="reversals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reported_nusd = models.BigIntegerField()
    debited_nusd = models.BigIntegerField()
    reason = models.CharField(max_length=100, blank=True, help_text="Stripe's dispute reason.")
    transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reported_nusd__gte=0)
                & Q(debited_nusd__gte=0)
                & Q(debited_nusd__lte=F("reported_nusd")),
                name="reversal_amounts",
            ),
            models.UniqueConstraint(
                fields=["stripe_object_id"],
                condition=Q(kind="dispute"),
                name="one_booking_per_dispute",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_object_id} ({self.event_id})"


class DisputeReason(models.TextChoices):
    """Why a buyer disputes a request: a short list an operator can sort by, plus free text."""

    WRONG_MODEL = "wrong_model", "The answer did not come from the model named"
    BROKEN_OUTPUT = "broken_output", "The answer was empty, cut off or garbled"
    TOO_SLOW = "too_slow", "It was far slower than the listing promised"
    OVERCHARGED = "overcharged", "The units billed do not match what was sent or received"
    OTHER = "other", "Something else"


class DisputeStatus(models.TextChoices):
    OPEN = "open", "open"
    APPROVED = "approved", "approved: refunded"
    REJECTED = "rejected", "rejected"


# Bounds of the buyer's and the operator's free text (the form, the API and the database agree).
DISPUTE_DETAIL_MAX = 1000
DISPUTE_NOTE_MAX = 1000


class Dispute(models.Model):
    """A buyer's claim that one settled request of theirs should not have been charged
    (billing.services.disputes). One per request, enforced by the one-to-one column. Approving it
    refunds the request through billing.services.request_refund (billing policy rule 9);
    `decided_by`/`decided_at` say which operator decided and when."""

    usage = models.OneToOneField(UsageRecord, on_delete=models.PROTECT, related_name="dispute")
    # Copied from the usage record: the queues read by buyer or seller without a join.
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disputes"
    )
    seller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disputes_against"
    )
    reason = models.CharField(max_length=24, choices=DisputeReason.choices)
    detail = models.TextField(blank=True, max_length=DISPUTE_DETAIL_MAX)
    status = models.CharField(
        max_length=16, choices=DisputeStatus.choices, default=DisputeStatus.OPEN
    )
    note = models.TextField(
        blank=True, max_length=DISPUTE_NOTE_MAX, help_text="The operator's note to the buyer."
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("decide_dispute", "Can approve or reject a buyer's dispute")]
        indexes = [
            models.Index(fields=["buyer", "-created_at"], name="dispute_buyer_recent"),
            models.Index(fields=["seller", "-created_at"], name="dispute_seller_recent"),
            models.Index(
                fields=["created_at"], condition=Q(status="open"), name="dispute_open_queue"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=DisputeReason.values), name="dispute_reason_known"
            ),
            # Open and undecided, or decided by someone at some time: never half of it.
            models.CheckConstraint(
                condition=Q(status="open", decided_by__isnull=True, decided_at__isnull=True)
                | Q(
                    status__in=["approved", "rejected"],
                    decided_by__isnull=False,
                    decided_at__isnull=False,
                ),
                name="dispute_decided_by_someone",
            ),
            models.CheckConstraint(
                condition=Q(LessThanOrEqual(Length("detail"), DISPUTE_DETAIL_MAX))
                & Q(LessThanOrEqual(Length("note"), DISPUTE_NOTE_MAX)),
                name="dispute_text_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute #{self.pk} ({self.status})"

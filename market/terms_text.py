"""The first published Trading Terms (v1) for buyers and sellers; operators publish later versions."""

BUYER_V1_TITLE = "Dragonfly Trading Terms for buyers"
BUYER_V1_BODY = """\
1. What you buy. Dragonfly matches each of your API requests to one seller listing that offers the \
model you ask for, under the constraints you set (price, speed, providers, privacy mode). You pay \
the matched listing's ask price for the usage the upstream provider reports, or, without such a \
report, for the output actually delivered to you. Requests that deliver no content cost nothing.

2. Your balance. Requests are paid from your prepaid balance. Before each request we reserve its \
worst-case cost and release what it did not use. Your balance never goes below zero; credit is \
not refundable except where the law requires it.

3. Sellers and privacy. Your requests are processed by third-party sellers' provider accounts. \
Do not send data you may not share with the upstream provider. With the trusted_only privacy mode, \
your requests go only to listings that Dragonfly has reviewed and marked trusted.

4. Acceptable use. You must follow the upstream providers' usage policies and the law. We may \
suspend keys that are used for abuse, fraud or to harm sellers.

5. Availability. Capacity depends on sellers. When no eligible listing is available, the request \
fails with market_unavailable and costs nothing. These terms may change: a new version applies \
once you accept it.
"""

SELLER_V1_TITLE = "Dragonfly Trading Terms for sellers"
SELLER_V1_BODY = """\
1. What you sell. You offer capacity on your own account with an upstream provider listed in the \
Dragonfly catalogue, at an ask price per model no higher than the catalogue's list price. You \
confirm that your agreement with that provider allows you to do so.

2. Your key. Your upstream key is encrypted at rest and used only to forward buyers' requests and \
to run small health probes (a one-token request or a model list, a few times an hour). You pay \
your provider for that usage. Dragonfly staff never see your key; you can re-key, pause or delete \
a listing at any time.

3. Health and suspension. Listings that fail repeatedly stop receiving traffic until a probe \
succeeds again. If your provider rejects the key or reports no balance, the listing is suspended \
and we email you; re-key it to return to the market. A listing you pause stays paused until you \
resume it.

4. Earnings. For every request served by your listing you earn the amount the buyer pays, less \
the platform fee shown in your seller portal. Earnings are paid out as described on the earnings \
page; we may withhold earnings obtained by fraud or in breach of these terms.

5. Conduct. Do not log, inspect or reuse buyers' requests, and do not misrepresent the model you \
serve. These terms may change: a new version applies once you accept it.
"""

# v2 (migration 0007): v1 and four promises Dragonfly keeps automatically (docs/billing-policy.md
# rules 11 and 12, docs/gateway.md "Price lock", docs/health.md "Authenticity probes"). The
# dashboard's Promises page says the same in plain words.
BUYER_V2_TITLE = BUYER_V1_TITLE
BUYER_V2_BODY = (
    BUYER_V1_BODY
    + """
6. Speed you require. A request that carries a hard time-to-first-token limit (the \
X-Hard-Max-TTFT-Ms header, or your routing profile's hard limit) goes only to listings whose \
measured median meets it. If the listing's first token still comes later than your limit, you \
are not charged for that request.

7. Price lock. Within one session (the X-Session-Id header), the asks at which a listing served \
your session's first request apply to the session's requests there for 30 minutes, even if the \
seller raises them; a lowered ask applies at once. The X-DF-Market-Price-Locked-Until header says \
when a locked price was used.

8. The model you ask for. Dragonfly regularly sends every listing small known-answer requests \
to check that it serves the model it names, and takes a listing that does not off the market.

9. Disputes. You may dispute a request you were charged for, with a reason, from its usage page \
or the API, within the period shown there. An operator decides; an approved dispute refunds what \
you paid for the request.
"""
)

SELLER_V2_TITLE = SELLER_V1_TITLE
SELLER_V2_BODY = (
    SELLER_V1_BODY
    + """
6. Speed promises. A buyer's request that carries a hard time-to-first-token limit reaches your \
listing only if its measured median meets the limit. If your first token comes later than the \
limit, the request is not paid and the buyer is not charged. Your seller portal shows each \
listing's share of late requests.

7. Price lock. A raised ask applies to a buyer's session only after the 30 minutes in which that \
session keeps the asks of its first request on your listing; a lowered ask applies at once.

8. Authenticity probes. Dragonfly sends each listing small known-answer requests (a few dozen \
prompt tokens and one output token per chat model, about four times a day; your provider bills \
you for them like health probes) to check that it serves the model it names. A listing that \
fails two of three checks is suspended with the reason, and we email you.

9. Buyer disputes. A buyer may dispute a request your listing served. If an operator approves the \
dispute, what you earned on that request is taken back from your earnings. Your seller portal \
shows disputes against your listings and their outcome.
"""
)

# v3 for sellers (migration 0009): the authenticity probes cover every model, not only chat, and a
# listing they suspend has what it served with the failed model refunded to its buyers
# (docs/health.md "Authenticity probes"). Buyers' terms stay at v2: nothing they agreed changes.
SELLER_V3_TITLE = SELLER_V1_TITLE
SELLER_V3_BODY = SELLER_V2_BODY.replace(
    """\
8. Authenticity probes. Dragonfly sends each listing small known-answer requests (a few dozen \
prompt tokens and one output token per chat model, about four times a day; your provider bills \
you for them like health probes) to check that it serves the model it names. A listing that \
fails two of three checks is suspended with the reason, and we email you.
""",
    """\
8. Authenticity probes. Dragonfly sends each listing small known-answer requests for every model \
it offers (a few dozen input tokens each, plus one output token for a chat model and a \
60-character sentence for a speech model, about four times a day; your provider bills you for \
them like health probes) to check that it serves the model it names. A listing that fails two of \
three checks of a model is suspended with the reason, and we email you. Every request it served \
with that model since the model last passed a check on it (since the listing was created, if it \
never did) is then refunded to its buyer in full, and what you earned on those requests is taken \
back from your earnings.
""",
)

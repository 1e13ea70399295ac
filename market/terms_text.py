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

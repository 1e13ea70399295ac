"""`{% authenticity_checks listing %}`: the seller portal's table of a listing's authenticity probes."""

from django import template

from market import authenticity_asks, selectors

register = template.Library()


def _fingerprint(check) -> str:
    """Whether the check's fingerprint matched the model's: "matched", "differed", or "" when
    there was none to compare."""
    gap = authenticity_asks.fingerprint_gap(
        check.model.modality, check.expected_fingerprint, check.answered_fingerprint
    )
    return "" if gap is None else "differed" if gap else "matched"


@register.inclusion_tag("market/partials/_authenticity_table.html")
def authenticity_checks(listing) -> dict:
    checks = selectors.authenticity_checks_recent(listing_id=listing.pk)
    return {
        "listing": listing,
        "checks": [(check, _fingerprint(check)) for check in checks],
        "prompt": authenticity_asks.PROMPT,
    }

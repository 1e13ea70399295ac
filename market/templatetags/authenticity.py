"""`{% authenticity_checks listing %}`: the seller portal's table of a listing's authenticity probes."""

from django import template

from market import authenticity, selectors

register = template.Library()


@register.inclusion_tag("market/partials/_authenticity_table.html")
def authenticity_checks(listing) -> dict:
    return {
        "listing": listing,
        "checks": selectors.authenticity_checks_recent(listing_id=listing.pk),
        "prompt": authenticity.PROMPT,
    }

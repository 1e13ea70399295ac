"""What the signup credit's daily limits count by: the client network and the email domain."""

import ipaddress

from django.conf import settings

IPV6_PREFIX = 64  # one customer's allocation: a /64 is one LAN, and anyone holding it has 2**64


def signup_network(address: str | None) -> str:
    """The network one client address counts under: an IPv4 address itself, an IPv6 address's /64
    (an IPv4-mapped IPv6 address counts as its IPv4 address). Blank if there is no valid address."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))


def email_domain(email_canonical: str) -> str:
    return email_canonical.rpartition("@")[2].strip().lower()


def domain_is_exempt(domain: str) -> bool:
    """Big free-mail domains skip the domain limit: thousands of strangers share them, and each of
    their mailboxes costs a signup there; the address limit still applies."""
    return domain in {d.lower() for d in settings.DRAGONFLY_SIGNUP_CREDIT_EXEMPT_DOMAINS}

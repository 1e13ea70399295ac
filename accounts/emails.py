"""Email address canonicalisation: one signup credit per mailbox (docs/signup-credit.md)."""

_DOTLESS_DOMAINS = {"gmail.com", "googlemail.com"}


def email_canonicalize(email: str) -> str:
    """Lowercase; drop a `+tag` on every domain; drop dots in the local part for Gmail.

    googlemail.com folds into gmail.com, because both deliver to the same mailbox.
    """
    email = email.strip().lower()
    local, sep, domain = email.rpartition("@")
    if not sep:
        return email
    local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"

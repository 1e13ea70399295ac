"""Seller keys at rest: AES-GCM round trip, binding to the listing row, key ids and rotation."""

import pytest
from django.core.management import call_command

from market import crypto
from market.models import Listing
from market.selectors import listing_upstream_key
from tests.market.factories import listing_make

K1 = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
K2 = "k2:YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="


def test_it_round_trips_a_key_bound_to_its_listing(settings):
    settings.DRAGONFLY_ENCRYPTION_KEYS = K1
    kid, blob = crypto.key_encrypt(listing_id=7, plaintext="sk-upstream-1234")
    assert kid == "k1"
    assert b"sk-upstream" not in blob
    assert len(blob) == crypto.NONCE_BYTES + len("sk-upstream-1234") + 16
    assert crypto.key_decrypt(listing_id=7, kid=kid, blob=blob) == "sk-upstream-1234"


def test_each_encryption_uses_a_fresh_nonce(settings):
    settings.DRAGONFLY_ENCRYPTION_KEYS = K1
    _, first = crypto.key_encrypt(listing_id=7, plaintext="same")
    _, second = crypto.key_encrypt(listing_id=7, plaintext="same")
    assert first != second


def test_a_ciphertext_moved_to_another_listing_does_not_decrypt(settings):
    settings.DRAGONFLY_ENCRYPTION_KEYS = K1
    kid, blob = crypto.key_encrypt(listing_id=7, plaintext="sk-upstream-1234")
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.key_decrypt(listing_id=8, kid=kid, blob=blob)


def test_a_tampered_ciphertext_or_unknown_kid_does_not_decrypt(settings):
    settings.DRAGONFLY_ENCRYPTION_KEYS = K1
    kid, blob = crypto.key_encrypt(listing_id=7, plaintext="sk-upstream-1234")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.key_decrypt(listing_id=7, kid=kid, blob=tampered)
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.key_decrypt(listing_id=7, kid="k9", blob=blob)


def test_it_refuses_to_encrypt_for_an_unsaved_listing(settings):
    with pytest.raises(ValueError):
        crypto.key_encrypt(listing_id=None, plaintext="x")


def test_stored_listing_keys_are_bound_to_their_row(seller):
    first = listing_make(seller, key="sim-first-key")
    second = listing_make(seller, key="sim-second-key")
    assert listing_upstream_key(listing_id=first.pk) == "sim-first-key"
    assert first.key_last4 == "-key"
    Listing.objects.filter(pk=second.pk).update(key_ciphertext=first.key_ciphertext)
    with pytest.raises(crypto.KeyDecryptionError):
        listing_upstream_key(listing_id=second.pk)


def test_rotation_re_encrypts_every_listing_under_the_current_kid(seller, settings, capsys):
    settings.DRAGONFLY_ENCRYPTION_KEYS = K1
    one = listing_make(seller, key="sim-one-0001")
    two = listing_make(seller, key="sim-two-0002")
    old_blob = bytes(Listing.objects.get(pk=one.pk).key_ciphertext)
    settings.DRAGONFLY_ENCRYPTION_KEYS = f"{K2},{K1}"

    call_command("rotate_listing_keys")

    out = capsys.readouterr().out
    assert "1/2" in out and "2/2" in out
    assert "2 listing keys re-encrypted under 'k2'" in out
    rows = {row.pk: row for row in Listing.objects.filter(pk__in=[one.pk, two.pk])}
    assert {row.key_id for row in rows.values()} == {"k2"}
    assert bytes(rows[one.pk].key_ciphertext) != old_blob
    settings.DRAGONFLY_ENCRYPTION_KEYS = K2  # the old key can now be retired
    assert listing_upstream_key(listing_id=one.pk) == "sim-one-0001"
    assert listing_upstream_key(listing_id=two.pk) == "sim-two-0002"


def test_rotation_with_nothing_to_do_changes_nothing(seller, settings, capsys):
    settings.DRAGONFLY_ENCRYPTION_KEYS = K1
    listing = listing_make(seller, key="sim-one-0001")
    blob = bytes(Listing.objects.get(pk=listing.pk).key_ciphertext)
    call_command("rotate_listing_keys")
    assert "0 listing keys re-encrypted" in capsys.readouterr().out
    assert bytes(Listing.objects.get(pk=listing.pk).key_ciphertext) == blob

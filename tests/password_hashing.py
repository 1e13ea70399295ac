"""A cheap password hash for the users tests make, readable by any server of the suite.

Django's default PBKDF2 runs 1,000,000 iterations (about half a second here): users made by the
factories spent most of a full run hashing. This hasher writes the same `pbkdf2_sha256$<iterations>$`
format with 1,000 iterations; Django reads the count from the hash, so the live servers the suite
starts (which keep production's hashers) verify these passwords unchanged.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000

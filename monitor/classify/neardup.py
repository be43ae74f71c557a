"""Near-duplicate complaints: the same story on several platforms, reposted or updated.

Character shingles (Chinese has no spaces) hashed into a MinHash signature;
two signatures agreeing in a fraction f of positions estimate a Jaccard
similarity of f. Signatures are cut into LSH bands stored in `minhash_bands`, so the
candidates for a new post come from an index lookup; the exact shingle Jaccard
of the few candidates then decides.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

PERMUTATIONS = 128
_PRIME = np.uint64(4294967291)  # the largest prime below 2**32: products stay in uint64
_RNG = np.random.default_rng(20261128)
_A = _RNG.integers(1, int(_PRIME), PERMUTATIONS, dtype=np.uint64)
_B = _RNG.integers(0, int(_PRIME), PERMUTATIONS, dtype=np.uint64)
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
_MASKED = re.compile(r"\d")


def normalize(text: str) -> str:
    """Letters and digits only, lower case, digits folded (amounts and dates vary by repost)."""
    return _MASKED.sub("0", _NOISE.sub("", text.lower()))


def shingles(text: str, size: int = 3) -> set[str]:
    text = normalize(text)
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def signature(text: str, size: int = 3) -> list[int] | None:
    """The MinHash signature, or None for text too short to compare."""
    grams = shingles(text, size)
    if len(grams) < 8:
        return None
    hashes = np.array(
        [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "big") for g in grams],
        dtype=np.uint64,
    )
    mixed = (_A[:, None] * hashes[None, :] + _B[:, None]) % _PRIME
    return [int(v) for v in mixed.min(axis=1)]


def similarity(a: list[int], b: list[int]) -> float:
    if len(a) != len(b) or not a:
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


BANDS = 32  # of 4 rows each: a pair at Jaccard 0.7 shares a band with probability 0.9998


def bands(sig: list[int]) -> list[str]:
    """LSH band keys: posts sharing any key are near-duplicate candidates."""
    rows = len(sig) // BANDS
    keys = []
    for b in range(BANDS):
        chunk = ",".join(map(str, sig[b * rows : (b + 1) * rows]))
        keys.append(hashlib.blake2b(f"{b}:{chunk}".encode(), digest_size=8).hexdigest())
    return keys

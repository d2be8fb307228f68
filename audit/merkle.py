"""RFC 9162 §2.1 Merkle tree over SHA-256: hashes, proofs and an append-only compact tree.

Owns the ledger's tree arithmetic and nothing else. It must never do I/O, keep
module-level mutable state, or import from ``gateway`` or ``policies``. Verifiers
return False on any malformed input and never raise; builders raise ValueError.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "subtree_ranges_for_consistency",
    "subtree_ranges_for_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
# §2.1.1: the hash of an empty list is the hash of the empty string.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = HASH(0x00 || d), §2.1.1. The prefix separates leaves from nodes."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right), the interior node of §2.1.1."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    # bool is an int subclass; a True "size" is a caller bug, not a tree of one leaf.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _split(n: int) -> int:
    """The k of §2.1.1: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactTree:
    """Merkle frontier: roots of the perfect subtrees left to right, one per set bit of size.

    Appending costs O(log n) hashes at worst (amortised O(1)) and root() O(log n),
    so a ledger never recomputes the tree; persist (size, frontier()) to resume.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, hashes: Sequence[bytes]) -> CompactTree:
        """Resume from a persisted frontier; the shape must match size exactly."""
        if not _is_size(size):
            raise ValueError(f"tree size must be a non-negative int, got {size!r}")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of {size} leaves has {size.bit_count()} frontier hashes, got {len(hashes)}"
            )
        if not all(_is_hash(h) for h in hashes):
            raise ValueError(f"frontier hashes must be {HASH_SIZE}-byte values")
        tree = cls()
        tree._size = size
        tree._frontier = list(hashes)
        return tree

    @property
    def size(self) -> int:
        return self._size

    def frontier(self) -> list[bytes]:
        return list(self._frontier)

    def append(self, leaf_hash: bytes) -> None:
        if not _is_hash(leaf_hash):
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        self._frontier.append(leaf_hash)
        # Each trailing 1-bit of the old size is a perfect subtree of the same height
        # as the one just completed, so the two merge (binary carry).
        carry = self._size
        while carry & 1:
            right = self._frontier.pop()
            self._frontier[-1] = node_hash(self._frontier[-1], right)
            carry >>= 1
        self._size += 1

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        # §2.1.1 splits at the largest power of two below n, which is exactly the
        # leftmost frontier subtree; folding from the right reproduces MTH.
        acc = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            acc = node_hash(left, acc)
        return acc


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH (§2.1.1) over already-hashed leaves, in O(log n) memory.

    Raises ValueError if any leaf hash is not HASH_SIZE bytes.
    """
    tree = CompactTree()
    for h in leaf_hashes:
        tree.append(h)
    return tree.root()


def subtree_ranges_for_inclusion(index: int, tree_size: int) -> list[tuple[int, int]]:
    """Leaf ranges [start, end) whose hashes form PATH(index, D[tree_size]), §2.1.3.1.

    In proof order (leaf upwards). Every range is an aligned perfect subtree except
    possibly the one ending at tree_size, which the caller hashes with root_hash.
    """
    if not _is_size(tree_size) or not _is_size(index) or index >= tree_size:
        raise ValueError(f"leaf index {index!r} is outside a tree of size {tree_size!r}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()  # the recursion emits root-side siblings first
    return ranges


def subtree_ranges_for_consistency(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges [start, end) whose hashes form PROOF(old_size, D[new_size]), §2.1.4.1.

    Empty for the trivial cases old_size == 0 and old_size == new_size, which need
    no proof. Same alignment guarantee as subtree_ranges_for_inclusion.
    """
    if not _is_size(old_size) or not _is_size(new_size) or old_size > new_size:
        raise ValueError(f"need 0 <= old_size <= new_size, got {old_size!r} and {new_size!r}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, new_size
    known = True  # SUBPROOF's b: is MTH(D[lo:old_size]) the old root the client holds?
    while old_size != hi:
        k = _split(hi - lo)
        if old_size - lo <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((lo + k, hi))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((lo, lo + k))
            lo += k
            known = False
    if not known:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of §2.1.3.1 for n = len(leaf_hashes)."""
    ranges = subtree_ranges_for_inclusion(index, len(leaf_hashes))
    return [root_hash(leaf_hashes[start:end]) for start, end in ranges]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of §2.1.4.1 for n = len(leaf_hashes); [] if trivial."""
    ranges = subtree_ranges_for_consistency(old_size, len(leaf_hashes))
    return [root_hash(leaf_hashes[start:end]) for start, end in ranges]


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """The §2.1.3.2 algorithm. False for any malformed input; never raises."""
    if not (_is_size(index) and _is_size(tree_size) and index < tree_size):
        return False  # step 1
    if not (_is_hash(leaf_hash) and _is_hash(root)):
        return False
    if not isinstance(proof, Sequence) or not all(_is_hash(p) for p in proof):
        return False
    # The length is fixed by (index, tree_size); rejecting others up front also
    # bounds the work an attacker can make us do.
    if len(proof) != len(subtree_ranges_for_inclusion(index, tree_size)):
        return False
    fn, sn = index, tree_size - 1  # step 2
    r = leaf_hash  # step 3
    for p in proof:  # step 4
        if sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            while fn and not fn & 1:  # 4b.ii: skip levels where we are the lone right edge
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)  # step 5


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """The §2.1.4.2 algorithm. False for any malformed input; never raises.

    Trivial cases, where §2.1.4.1 defines no proof: equal sizes need an empty proof
    and equal roots; an empty old tree needs an empty proof and old_root equal to
    MTH({}) = EMPTY_ROOT (§2.1.1), being a prefix of every tree.
    """
    if not (_is_size(old_size) and _is_size(new_size) and old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    if not isinstance(proof, Sequence) or not all(_is_hash(p) for p in proof):
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    if len(proof) != len(subtree_ranges_for_consistency(old_size, new_size)):
        return False  # also covers step 1, the empty proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: the old root is itself a subtree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # step 7
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)

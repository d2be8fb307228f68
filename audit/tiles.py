"""The ledger's Merkle tree in storage: a frontier that grows fast, and every eighth level kept.

Interior nodes at levels 8, 16, 24, … are stored as they complete (one row per 256 events, the
tile height of C2SP tlog-tiles), so any subtree hash of RFC 9162 §2.1.1 — and so any inclusion
proof or past root — costs at most a few hundred hashes. Pure arithmetic; storage is reached
through a `NodeSource` the caller supplies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, Protocol

from audit.merkle import EMPTY_ROOT, CompactTree

#: Interior levels that are stored: every multiple of this (level 0 is the leaf hashes).
TILE_HEIGHT: Final = 8
_BLOCK: Final = 1 << TILE_HEIGHT
_sha256 = hashlib.sha256


class NodeSource(Protocol):
    """Where stored hashes come from: leaf hashes (level 0) and stored interior levels."""

    def hashes(self, level: int, start: int, stop: int) -> list[bytes]:
        """Hashes of level `level` with index in [start, stop), in order.

        Raises:
            LookupError: when any of them is not stored.
        """
        ...


class Frontier:
    """The compact range [0, size) of §2.1.1: one perfect-subtree hash per set bit of size.

    `extend` returns the stored-level nodes it completes as (level, index, hash), so a writer
    stores them and a verifier compares them with what is stored.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        CompactTree.from_frontier(size, hashes)  # validates the shape; raises ValueError
        self.size = size
        self.hashes = list(hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def root(self) -> bytes:
        """MTH over the leaves so far (§2.1.1): fold the frontier from the right."""
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = _sha256(b"\x01" + left + acc).digest()
        return acc

    def extend(self, leaf_hashes: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
        """Append leaf hashes; return the stored-level nodes completed on the way."""
        done: list[tuple[int, int, bytes]] = []
        i, n = 0, len(leaf_hashes)
        while i < n:
            if self.size % _BLOCK == 0 and n - i >= _BLOCK:
                # A whole aligned block: hash it level by level, which is much faster in
                # Python than 256 single appends, and gives the same node (§2.1.1).
                block = _perfect_root(list(leaf_hashes[i : i + _BLOCK]))
                done.append((TILE_HEIGHT, self.size >> TILE_HEIGHT, block))
                self._push(block, TILE_HEIGHT, done)
                i += _BLOCK
            else:
                self._push(leaf_hashes[i], 0, done)
                i += 1
        return done

    def _push(self, h: bytes, level: int, done: list[tuple[int, int, bytes]]) -> None:
        hashes = self.hashes
        hashes.append(h)
        new_size = self.size + (1 << level)
        carry = self.size >> level
        while carry & 1:
            right = hashes.pop()
            h = _sha256(b"\x01" + hashes[-1] + right).digest()
            hashes[-1] = h
            level += 1
            if level % TILE_HEIGHT == 0:
                done.append((level, (new_size >> level) - 1, h))
            carry >>= 1
        self.size = new_size


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The aligned perfect subtrees (level, index) that tile [start, end), left to right.

    For a range of the §2.1.1 recursion (such as [0, n) or a range of a proof), MTH of the
    range is these hashes folded from the right.
    """
    out: list[tuple[int, int]] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def subtree_hash(source: NodeSource, level: int, index: int) -> bytes:
    """The hash of the perfect subtree of 2**level leaves starting at leaf index << level.

    Raises:
        LookupError: when the stored hashes it needs are missing.
    """
    base = level - level % TILE_HEIGHT
    count = 1 << (level - base)
    first = index << (level - base)
    hashes = source.hashes(base, first, first + count)
    if len(hashes) != count:
        raise LookupError(f"level {base} hashes {first}..{first + count - 1} are incomplete")
    return _perfect_root(hashes)


def range_hash(source: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range of the §2.1.1 recursion, from stored hashes.

    Raises:
        LookupError: when the stored hashes it needs are missing.
    """
    parts = [subtree_hash(source, level, index) for level, index in perfect_subtrees(start, end)]
    if not parts:
        return EMPTY_ROOT
    acc = parts[-1]
    for left in reversed(parts[:-1]):
        acc = _sha256(b"\x01" + left + acc).digest()
    return acc


def frontier_at(source: NodeSource, size: int) -> Frontier:
    """The frontier of the first `size` leaves, rebuilt from stored hashes.

    Raises:
        LookupError: when the stored hashes it needs are missing.
    """
    return Frontier(
        size, [subtree_hash(source, level, index) for level, index in perfect_subtrees(0, size)]
    )


def _perfect_root(hashes: list[bytes]) -> bytes:
    level = hashes
    while len(level) > 1:
        level = [
            _sha256(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=True)
        ]
    return level[0]

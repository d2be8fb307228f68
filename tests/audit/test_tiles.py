"""The stored tree: the fast frontier and the every-eighth-level nodes against RFC 9162 MTH."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.merkle import root_hash, subtree_ranges_for_inclusion
from audit.tiles import (
    TILE_HEIGHT,
    Frontier,
    frontier_at,
    perfect_subtrees,
    range_hash,
    subtree_hash,
)


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]


class DictSource:
    """Stored hashes in a dict, as the ledger keeps them (leaves and levels 8, 16, …)."""

    def __init__(self, leaf_hashes: list[bytes]) -> None:
        self.levels: dict[int, dict[int, bytes]] = {0: dict(enumerate(leaf_hashes))}
        frontier = Frontier()
        for level, index, h in frontier.extend(leaf_hashes):
            self.levels.setdefault(level, {})[index] = h

    def hashes(self, level: int, start: int, stop: int) -> list[bytes]:
        stored = self.levels.get(level, {})
        if any(i not in stored for i in range(start, stop)):
            raise LookupError(f"level {level}")
        return [stored[i] for i in range(start, stop)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 1500), cuts=st.lists(st.integers(0, 1500), max_size=5))
def test_frontier_root_equals_mth_whatever_the_batches(n: int, cuts: list[int]) -> None:
    hashes = leaves(n)
    frontier = Frontier()
    done = []
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    for a, b in itertools.pairwise(bounds):
        done += frontier.extend(hashes[a:b])
    assert frontier.root() == root_hash(hashes)
    assert frontier.size == n
    # Every stored node is MTH of its aligned block, and every complete block has one.
    expected = {(lv, ix) for lv in range(TILE_HEIGHT, 64, TILE_HEIGHT) for ix in range(n >> lv)}
    assert {(lv, ix) for lv, ix, _ in done} == expected
    for level, index, h in done:
        assert h == root_hash(hashes[index << level : (index + 1) << level])


@pytest.mark.parametrize("n", [1, 255, 256, 257, 511, 512, 4096, 70_000])
def test_past_roots_and_subtrees_come_from_stored_hashes(n: int) -> None:
    hashes = leaves(n)
    source = DictSource(hashes)
    for size in {1, n // 3 + 1, n - 1 or 1, n}:
        assert range_hash(source, 0, size) == root_hash(hashes[:size])
        assert frontier_at(source, size).root() == root_hash(hashes[:size])
    index = n // 2
    for start, end in subtree_ranges_for_inclusion(index, n):
        assert range_hash(source, start, end) == root_hash(hashes[start:end])


def test_perfect_subtrees_tile_the_range() -> None:
    for start, end in [(0, 13), (8, 16), (256, 300), (0, 1), (4096, 70_000)]:
        tiles = perfect_subtrees(start, end)
        at = start
        for level, index in tiles:
            assert index << level == at
            at += 1 << level
        assert at == end


def test_missing_stored_hashes_are_reported() -> None:
    source = DictSource(leaves(600))
    del source.levels[TILE_HEIGHT][1]
    with pytest.raises(LookupError):
        subtree_hash(source, 9, 0)
    with pytest.raises(ValueError):
        Frontier(3, [b"\x00" * 32])

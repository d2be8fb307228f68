"""Tests for audit.merkle: CT known answers, an RFC 9162 reference model, and attacks."""

from __future__ import annotations

import ast
import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import audit.merkle
from audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    subtree_ranges_for_consistency,
    subtree_ranges_for_inclusion,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------
# Known answers. Copied as data from transparency-dev/merkle, proof/verify_test.go
# (leaves, roots, inclusionProofs, consistencyProofs); the same values appear in
# google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc (kInputs,
# kSHA256Roots, kSHA256Paths, kSHA256Proofs), except the 6 -> 7 consistency proof,
# which only the former has. Both number leaves from 1; indices here are 0-based.
# ---------------------------------------------------------------------------

CT_LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_LEAVES = [leaf_hash(d) for d in CT_LEAF_INPUTS]

CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

# (index, tree_size, proof)
CT_INCLUSION: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (old_size, new_size, proof)
CT_CONSISTENCY: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

# Proof shapes from transparency-dev/merkle, proof/proof_test.go (TestInclusion,
# TestConsistency). Their node id(level, i) is the leaf range [i * 2^level, (i+1) * 2^level);
# a "rehash" group (an ephemeral right-edge node) is the union of its members' ranges.
R = tuple[int, int]
SHAPE_INCLUSION: list[tuple[int, int, list[R]]] = [  # (index, size, ranges)
    (0, 1, []),
    (0, 2, [(1, 2)]),
    (1, 2, [(0, 1)]),
    (1, 3, [(0, 1), (2, 3)]),
    (0, 7, [(1, 2), (2, 4), (4, 7)]),
    (1, 7, [(0, 1), (2, 4), (4, 7)]),
    (2, 7, [(3, 4), (0, 2), (4, 7)]),
    (3, 7, [(2, 3), (0, 2), (4, 7)]),
    (4, 7, [(5, 6), (6, 7), (0, 4)]),
    (5, 7, [(4, 5), (6, 7), (0, 4)]),
    (6, 7, [(4, 6), (0, 4)]),
    (2, 4, [(3, 4), (0, 2)]),
    (3, 5, [(2, 3), (0, 2), (4, 5)]),
    (3, 6, [(2, 3), (0, 2), (4, 6)]),
    (4, 6, [(5, 6), (0, 4)]),
    (10, 15, [(11, 12), (8, 10), (12, 15), (0, 8)]),
    (24, 31, [(25, 26), (26, 28), (28, 31), (16, 24), (0, 16)]),
    (81, 95, [(80, 81), (82, 84), (84, 88), (88, 95), (64, 80), (0, 64)]),
]
SHAPE_CONSISTENCY: list[tuple[int, int, list[R]]] = [  # (old, new, ranges)
    (1, 2, [(1, 2)]),
    (1, 4, [(1, 2), (2, 4)]),
    (1, 6, [(1, 2), (2, 4), (4, 6)]),
    (2, 3, [(2, 3)]),
    (2, 8, [(2, 4), (4, 8)]),
    (3, 7, [(2, 3), (3, 4), (0, 2), (4, 7)]),
    (4, 7, [(4, 7)]),
    (5, 7, [(4, 5), (5, 6), (6, 7), (0, 4)]),
    (6, 7, [(4, 6), (6, 7), (0, 4)]),
    (7, 8, [(6, 7), (7, 8), (4, 6), (0, 4)]),
    *((n, n, []) for n in (1, 2, 3, 4, 5, 7, 8)),
    (2, 4, [(2, 4)]),
    (3, 5, [(2, 3), (3, 4), (0, 2), (4, 5)]),
    (3, 6, [(2, 3), (3, 4), (0, 2), (4, 6)]),
    (4, 6, [(4, 6)]),
    (1, 7, [(1, 2), (2, 4), (4, 7)]),
    (10, 15, [(8, 10), (10, 12), (12, 15), (0, 8)]),
    (24, 31, [(16, 24), (24, 31), (0, 16)]),
    (81, 95, [(80, 81), (81, 82), (82, 84), (84, 88), (88, 95), (64, 80), (0, 64)]),
]


def _hx(proof: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in proof]


def _ct_root(size: int) -> bytes:
    return bytes.fromhex(CT_ROOTS[size])


# ---------------------------------------------------------------------------
# Reference model: a literal transcription of RFC 9162 §2.1.1 MTH, §2.1.3.1 PATH
# and §2.1.4.1 SUBPROOF over raw inputs, with its own hashing. Slow on purpose.
# ---------------------------------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if len(d) == 0:
        return _sha(b"")
    if len(d) == 1:
        return _sha(b"\x00" + d[0])
    k = _ref_k(len(d))
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _ref_k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _ref_k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def _distinct_inputs(n: int, salt: bytes) -> list[bytes]:
    # Distinct leaves: with duplicates, "wrong index" can honestly verify.
    return [salt + i.to_bytes(4, "big") for i in range(n)]


def _flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _inclusion_shape(index: int, size: int) -> tuple[bool, ...]:
    """Which side each sibling sits on; the verifier's computation depends on nothing else."""
    return tuple(end <= index for _, end in subtree_ranges_for_inclusion(index, size))


def _consistency_shape(old: int, new: int) -> tuple[str, ...]:
    return tuple(
        "seed" if end == old else "left" if end < old else "right"
        for _, end in subtree_ranges_for_consistency(old, new)
    )


leaf_lists = st.lists(st.binary(max_size=6), min_size=1, max_size=300)
sizes = st.integers(min_value=1, max_value=300)
salts = st.binary(max_size=4)

# ---------------------------------------------------------------------------
# 1. Known answers
# ---------------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert root_hash([]) == EMPTY_ROOT
    assert CompactTree().root() == EMPTY_ROOT
    assert CompactTree().size == 0
    assert CompactTree().frontier() == []


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"").hex() == CT_ROOTS[1]
    assert node_hash(CT_LEAVES[0], CT_LEAVES[1]).hex() == CT_ROOTS[2]
    assert len(leaf_hash(b"x")) == HASH_SIZE


@pytest.mark.parametrize("size", range(9))
def test_ct_roots(size: int) -> None:
    assert root_hash(CT_LEAVES[:size]) == _ct_root(size)
    assert ref_mth(CT_LEAF_INPUTS[:size]) == _ct_root(size)


def test_ct_roots_by_appending() -> None:
    tree = CompactTree()
    for size, leaf in enumerate(CT_LEAVES, start=1):
        tree.append(leaf)
        assert tree.size == size
        assert tree.root() == _ct_root(size)
        assert len(tree.frontier()) == size.bit_count()


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    assert inclusion_proof(CT_LEAVES[:size], index) == _hx(proof)
    assert ref_path(index, CT_LEAF_INPUTS[:size]) == _hx(proof)
    assert verify_inclusion(CT_LEAVES[index], index, size, _hx(proof), _ct_root(size))


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_ct_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    assert consistency_proof(CT_LEAVES[:new], old) == _hx(proof)
    assert ref_proof(old, CT_LEAF_INPUTS[:new]) == _hx(proof)
    assert verify_consistency(old, new, _hx(proof), _ct_root(old), _ct_root(new))


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in CT_INCLUSION if v[2]])
def test_ct_inclusion_vectors_reject_corruption(index: int, size: int, proof: list[str]) -> None:
    # The probes of verify_test.go's corruptInclusionProof, plus every single-bit flip.
    p, root, leaf = _hx(proof), _ct_root(size), CT_LEAVES[index]
    some_hash = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    assert len(some_hash) == HASH_SIZE
    probes: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaf, index - 1, size, p, root),
        (leaf, index + 1, size, p, root),
        (leaf, index ^ 2, size, p, root),
        (leaf, index, size * 2, p, root),
        (leaf, index, size // 2, p, root),
        (leaf_hash(b"WrongLeaf"), index, size, p, root),
        (leaf, index, size, p, EMPTY_ROOT),
        (leaf, index, size, p, some_hash),
        (leaf, index, size, [*p, b""], root),
        (leaf, index, size, [*p, root], root),
        (leaf, index, size, [b"", *p], root),
        (leaf, index, size, [root, *p], root),
        (leaf, index, size, p[:-1], root),
    ]
    if len(p) > 1:
        probes.append((leaf, index, size, [p[0], some_hash, *p[1:]], root))
    for i, bit in itertools.product(range(len(p)), range(HASH_SIZE * 8)):
        probes.append((leaf, index, size, [*p[:i], _flip(p[i], bit), *p[i + 1 :]], root))
    for bit in range(HASH_SIZE * 8):
        probes.append((_flip(leaf, bit), index, size, p, root))
        probes.append((leaf, index, size, p, _flip(root, bit)))
    accepted = [pr[1:3] for pr in probes if verify_inclusion(*pr)]
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CT_CONSISTENCY if v[2]])
def test_ct_consistency_vectors_reject_corruption(old: int, new: int, proof: list[str]) -> None:
    # The probes of verify_test.go's corruptConsistencyProof, plus every single-bit flip.
    p, r1, r2 = _hx(proof), _ct_root(old), _ct_root(new)
    probes: list[tuple[int, int, list[bytes], bytes, bytes]] = [
        (old - 1, new, p, r1, r2),
        (old + 1, new, p, r1, r2),
        (old ^ 2, new, p, r1, r2),
        (old, new * 2, p, r1, r2),
        (old, new // 2, p, r1, r2),
        (old, new, p, b"WrongRoot", r2),
        (old, new, p, r1, b"WrongRoot"),
        (old, new, p, r2, r1),
        (old, new, [], r1, r2),
        (old, new, [*p, b""], r1, r2),
        (old, new, [*p, r1], r1, r2),
        (old, new, [*p, r2], r1, r2),
        (old, new, [b"", *p], r1, r2),
        (old, new, [r1, *p], r1, r2),
        (old, new, [r2, *p], r1, r2),
        (old, new, [p[0], *p], r1, r2),
        (old, new, p[:-1], r1, r2),
    ]
    for i, bit in itertools.product(range(len(p)), range(HASH_SIZE * 8)):
        probes.append((old, new, [*p[:i], _flip(p[i], bit), *p[i + 1 :]], r1, r2))
    for bit in range(HASH_SIZE * 8):
        probes.append((old, new, p, _flip(r1, bit), r2))
        probes.append((old, new, p, r1, _flip(r2, bit)))
    accepted = [pr[:2] for pr in probes if verify_consistency(*pr)]
    assert accepted == []


def test_rfc_9162_example_tree() -> None:
    # The seven-leaf example of RFC 9162 §2.1.5 (and RFC 6962 §2.1.3), nodes named as there.
    d = [bytes([i]) for i in range(7)]
    a, b, c, d_, e, f, j = (leaf_hash(x) for x in d)
    g, h, i = node_hash(a, b), node_hash(c, d_), node_hash(e, f)
    k, l_ = node_hash(g, h), node_hash(i, j)
    leaves = [a, b, c, d_, e, f, j]
    assert root_hash(leaves) == node_hash(k, l_)
    assert inclusion_proof(leaves, 0) == [b, h, l_]
    assert inclusion_proof(leaves, 3) == [c, g, l_]
    assert inclusion_proof(leaves, 4) == [f, j, k]
    assert inclusion_proof(leaves, 6) == [i, k]
    assert consistency_proof(leaves, 3) == [c, d_, g, l_]
    assert consistency_proof(leaves, 4) == [l_]
    assert consistency_proof(leaves, 6) == [i, j, k]


@pytest.mark.parametrize(("index", "size", "ranges"), SHAPE_INCLUSION)
def test_inclusion_range_vectors(index: int, size: int, ranges: list[R]) -> None:
    assert subtree_ranges_for_inclusion(index, size) == ranges


@pytest.mark.parametrize(("old", "new", "ranges"), SHAPE_CONSISTENCY)
def test_consistency_range_vectors(old: int, new: int, ranges: list[R]) -> None:
    assert subtree_ranges_for_consistency(old, new) == ranges


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (3, 0), (8, 7), (-1, 5)])
def test_inclusion_ranges_reject_out_of_range(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="outside a tree"):
        subtree_ranges_for_inclusion(index, size)


@pytest.mark.parametrize(("old", "new"), [(5, 0), (9, 8), (-1, 3), (0, -1)])
def test_consistency_ranges_reject_out_of_range(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="old_size <= new_size"):
        subtree_ranges_for_consistency(old, new)


# ---------------------------------------------------------------------------
# 2. Agreement with the reference model
# ---------------------------------------------------------------------------


def test_exhaustive_small_trees_match_reference() -> None:
    data = _distinct_inputs(33, b"ex")
    leaves = [leaf_hash(x) for x in data]
    for n in range(1, len(data) + 1):
        root = ref_mth(data[:n])
        assert root_hash(leaves[:n]) == root
        for m in range(n):
            proof = inclusion_proof(leaves[:n], m)
            assert proof == ref_path(m, data[:n])
            assert verify_inclusion(leaves[m], m, n, proof, root)
        for m in range(1, n + 1):
            proof = consistency_proof(leaves[:n], m)
            assert proof == ref_proof(m, data[:n])
            assert verify_consistency(m, n, proof, ref_mth(data[:m]), root)


@given(leaf_lists)
def test_root_matches_reference(data: list[bytes]) -> None:
    assert root_hash([leaf_hash(x) for x in data]) == ref_mth(data)


@given(leaf_lists, st.data())
def test_inclusion_matches_reference_and_verifies(data: list[bytes], draw: st.DataObject) -> None:
    index = draw.draw(st.integers(0, len(data) - 1), label="index")
    leaves = [leaf_hash(x) for x in data]
    proof = inclusion_proof(leaves, index)
    assert proof == ref_path(index, data)
    assert verify_inclusion(leaves[index], index, len(data), proof, ref_mth(data))


@given(leaf_lists, st.data())
def test_consistency_matches_reference_and_verifies(data: list[bytes], draw: st.DataObject) -> None:
    old = draw.draw(st.integers(0, len(data)), label="old_size")
    leaves = [leaf_hash(x) for x in data]
    proof = consistency_proof(leaves, old)
    assert proof == (ref_proof(old, data) if old else [])
    assert verify_consistency(old, len(data), proof, ref_mth(data[:old]), ref_mth(data))


@given(leaf_lists)
def test_compact_tree_root_after_every_append(data: list[bytes]) -> None:
    tree = CompactTree()
    leaves = [leaf_hash(x) for x in data]
    for n, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        assert tree.size == n
        assert len(tree.frontier()) == n.bit_count()  # at most log2(n) + 1 hashes
        assert tree.root() == root_hash(leaves[:n]) == ref_mth(data[:n])


@given(leaf_lists, st.data())
def test_from_frontier_round_trips_and_resumes(data: list[bytes], draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)), label="cut")
    leaves = [leaf_hash(x) for x in data]
    first = CompactTree()
    for leaf in leaves[:cut]:
        first.append(leaf)
    resumed = CompactTree.from_frontier(first.size, first.frontier())
    assert resumed.size == cut
    assert resumed.frontier() == first.frontier()
    assert resumed.root() == first.root()
    for leaf in leaves[cut:]:
        resumed.append(leaf)
    assert resumed.root() == ref_mth(data)


def test_frontier_is_a_copy() -> None:
    tree = CompactTree()
    tree.append(CT_LEAVES[0])
    tree.frontier().clear()
    assert tree.root() == _ct_root(1)


def _check_cover(ranges: list[R], tree_size: int, missing: R | None) -> None:
    """Ranges are disjoint, tile [0, tree_size) apart from `missing`, and all but the
    right-edge one are aligned perfect subtrees (what a subtree store can look up)."""
    pieces = sorted([*ranges, *([missing] if missing else [])])
    assert pieces[0][0] == 0
    assert pieces[-1][1] == tree_size
    for (_, end), (start, _) in itertools.pairwise(pieces):
        assert end == start
    for start, end in ranges:
        width = end - start
        if end != tree_size:
            assert width & (width - 1) == 0 and start % width == 0
        else:  # right edge: its perfect pieces (the set bits of width) are aligned too
            assert start % (1 << (width - 1).bit_length()) == 0


@given(st.integers(1, 2**64), st.integers(0, 2**64))
@example(1_000_000, 0)
@example(1_000_000, 123_456)
@example(1_000_000, 999_999)
def test_inclusion_ranges_structure(tree_size: int, seed: int) -> None:
    index = seed % tree_size
    ranges = subtree_ranges_for_inclusion(index, tree_size)
    _check_cover(ranges, tree_size, (index, index + 1))
    assert len(ranges) <= (tree_size - 1).bit_length()


@given(st.integers(2, 2**64), st.integers(0, 2**64))
@example(1_000_000, 0)
@example(1_000_000, 524_287)
@example(1_000_000, 999_998)
def test_consistency_ranges_structure(new_size: int, seed: int) -> None:
    old = 1 + seed % (new_size - 1)
    ranges = subtree_ranges_for_consistency(old, new_size)
    old_is_subtree = old & (old - 1) == 0
    # The client's old root stands in for [0, old) exactly when old is a power of two;
    # otherwise the proof starts with a "seed" range ending at old (§2.1.4.2 step 5).
    _check_cover(ranges, new_size, (0, old) if old_is_subtree else None)
    assert old_is_subtree != (ranges[0][1] == old)
    assert len(ranges) <= new_size.bit_length() + 1


def _aligned_store(leaves: list[bytes]) -> dict[R, bytes]:
    """What a ledger might persist: hashes of every aligned perfect subtree."""
    store = {(i, i + 1): h for i, h in enumerate(leaves)}
    width = 2
    while width <= len(leaves):
        for start in range(0, len(leaves) - width + 1, width):
            half = start + width // 2
            store[start, start + width] = node_hash(store[start, half], store[half, start + width])
        width *= 2
    return store


def _hash_from_store(store: dict[R, bytes], start: int, end: int) -> bytes:
    if (start, end) in store:
        return store[start, end]
    # A right-edge range: split into its aligned perfect pieces, biggest first.
    pieces, pos = [], start
    for bit in reversed(range((end - start).bit_length())):
        if (end - start) >> bit & 1:
            pieces.append(store[pos, pos + (1 << bit)])
            pos += 1 << bit
    return CompactTree.from_frontier(end - start, pieces).root()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 1500), salts, st.data())
def test_subtree_store_answers_proofs_without_rehashing_leaves(
    n: int, salt: bytes, draw: st.DataObject
) -> None:
    leaves = [leaf_hash(x) for x in _distinct_inputs(n, salt)]
    store = _aligned_store(leaves)
    for _ in range(5):
        index = draw.draw(st.integers(0, n - 1), label="index")
        size = draw.draw(st.integers(index + 1, n), label="size")
        old = draw.draw(st.integers(0, size), label="old")
        ranges = subtree_ranges_for_inclusion(index, size)
        fast = [_hash_from_store(store, s, e) for s, e in ranges]
        assert fast == inclusion_proof(leaves[:size], index)
        ranges = subtree_ranges_for_consistency(old, size)
        fast = [_hash_from_store(store, s, e) for s, e in ranges]
        assert fast == consistency_proof(leaves[:size], old)


# ---------------------------------------------------------------------------
# 3. Attacks and malformed input
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(sizes, salts, st.data())
def test_inclusion_attacks_fail(n: int, salt: bytes, draw: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in _distinct_inputs(n, salt)]
    index = draw.draw(st.integers(0, n - 1), label="index")
    leaf, root = leaves[index], root_hash(leaves)
    proof = inclusion_proof(leaves, index)
    assert verify_inclusion(leaf, index, n, proof, root)

    # Any single flipped bit, in any proof element, the leaf hash or the root.
    for i, bit in itertools.product(range(len(proof)), range(HASH_SIZE * 8)):
        bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
        assert not verify_inclusion(leaf, index, n, bad, root)
    for bit in range(HASH_SIZE * 8):
        assert not verify_inclusion(_flip(leaf, bit), index, n, proof, root)
        assert not verify_inclusion(leaf, index, n, proof, _flip(root, bit))

    # Any other position in the same tree.
    for other in range(-1, n + 2):
        if other != index:
            assert not verify_inclusion(leaf, other, n, proof, root)

    # Another tree size fails unless it induces the very same computation, which is
    # why the size must come from a signed tree head, never from the prover.
    for other in range(index + 1, 2 * n + 2):
        same = _inclusion_shape(index, other) == _inclusion_shape(index, n)
        assert verify_inclusion(leaf, index, other, proof, root) == (other == n or same)
    assert not verify_inclusion(leaf, index, 2 * n, proof, root)

    # Truncated, extended, reordered.
    junk = draw.draw(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), label="junk")
    tampered = [[*proof, junk], [junk, *proof], [*proof, root], [*proof, leaf], [leaf, *proof]]
    tampered += [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    for i, j in itertools.combinations(range(len(proof)), 2):
        swapped = list(proof)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        tampered.append(swapped)
    for bad in tampered:
        assert not verify_inclusion(leaf, index, n, bad, root)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), salts, st.data())
def test_consistency_attacks_fail(n: int, salt: bytes, draw: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in _distinct_inputs(n, salt)]
    old = draw.draw(st.integers(1, n - 1), label="old")
    r1, r2 = root_hash(leaves[:old]), root_hash(leaves)
    proof = consistency_proof(leaves, old)
    assert verify_consistency(old, n, proof, r1, r2)

    for i, bit in itertools.product(range(len(proof)), range(HASH_SIZE * 8)):
        bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
        assert not verify_consistency(old, n, bad, r1, r2)
    for bit in range(HASH_SIZE * 8):
        assert not verify_consistency(old, n, proof, _flip(r1, bit), r2)
        assert not verify_consistency(old, n, proof, r1, _flip(r2, bit))
    assert not verify_consistency(old, n, proof, r2, r1)

    for other in range(-1, n + 2):
        if other != old:
            assert not verify_consistency(other, n, proof, r1, r2)
    for other in range(old, 2 * n + 2):
        same = other > old and _consistency_shape(old, other) == _consistency_shape(old, n)
        assert verify_consistency(old, other, proof, r1, r2) == (other == n or same)

    junk = draw.draw(st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE), label="junk")
    tampered = [[], [*proof, junk], [junk, *proof], [*proof, r1], [r1, *proof], [*proof, r2]]
    tampered += [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    for i, j in itertools.combinations(range(len(proof)), 2):
        swapped = list(proof)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        tampered.append(swapped)
    for bad in tampered:
        assert not verify_consistency(old, n, bad, r1, r2)


@settings(deadline=None)
@given(st.integers(2, 300), salts, st.data())
def test_rewritten_history_is_not_consistent(n: int, salt: bytes, draw: st.DataObject) -> None:
    data = _distinct_inputs(n, salt)
    old = draw.draw(st.integers(1, n - 1), label="old")
    victim = draw.draw(st.integers(0, old - 1), label="rewritten leaf")
    forged = list(data)
    forged[victim] = b"forged" + data[victim]
    real = [leaf_hash(x) for x in data]
    fake = [leaf_hash(x) for x in forged]
    remembered = root_hash(real[:old])  # what an auditor saw before the rewrite

    # The log now serves the rewritten tree, with an honest proof for it.
    assert not verify_consistency(old, n, consistency_proof(fake, old), remembered, root_hash(fake))
    # Or it tries the real tree's proof against the rewritten tree head.
    assert not verify_consistency(old, n, consistency_proof(real, old), remembered, root_hash(fake))
    # A rewritten old head cannot be linked to the real new tree either.
    assert not verify_consistency(
        old, n, consistency_proof(real, old), root_hash(fake[:old]), root_hash(real)
    )
    # Whereas honestly appending is consistent.
    assert verify_consistency(old, n, consistency_proof(real, old), remembered, root_hash(real))


def test_single_leaf_tree() -> None:
    h = leaf_hash(b"data")
    assert root_hash([h]) == h
    assert inclusion_proof([h], 0) == []
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    assert not verify_inclusion(b"", 0, 1, [], b"")


H = leaf_hash(b"h")
MALFORMED_INCLUSION: list[tuple[object, object, object, object, object]] = [
    (H, 0, 0, [], EMPTY_ROOT),  # empty tree has no leaves
    (H, 1, 0, [], EMPTY_ROOT),
    (H, 2, 1, [], H),  # index >= size
    (H, 1, 1, [], H),
    (H, -1, 1, [], H),
    (H, 0, -1, [], H),
    (H, 0, True, [], H),  # bool is not a size
    (H, 0.0, 1, [], H),
    (H, "0", 1, [], H),
    (H[:31], 0, 1, [], H[:31]),  # short hashes
    (H + b"\x00", 0, 1, [], H + b"\x00"),
    (H.hex(), 0, 1, [], H.hex()),
    (None, 0, 1, [], None),
    (H, 0, 2, [b""], H),
    (H, 0, 2, [H[:31]], H),
    (H, 0, 2, [None], H),
    (H, 0, 2, [H.hex()], H),
    (H, 0, 2, None, H),
    (H, 0, 2, 5, H),
    (H, 0, 2, H, H),  # bytes is a Sequence of ints, not of hashes
    (H, 0, 2, [H, H], H),  # too long
    (H, 0, 2, [], H),  # too short
    (H, 0, 2**80, [H] * 10_000, H),
    (H, 2**70, 2**71, [H] * 71, H),
]


@pytest.mark.parametrize("args", MALFORMED_INCLUSION)
def test_verify_inclusion_rejects_malformed_input_without_raising(args: tuple[Any, ...]) -> None:
    assert verify_inclusion(*args) is False


MALFORMED_CONSISTENCY: list[tuple[object, object, object, object, object]] = [
    (1, 0, [], H, H),  # time travel
    (2, 1, [], H, H),
    (-1, 1, [], EMPTY_ROOT, H),
    (0, -1, [], EMPTY_ROOT, EMPTY_ROOT),
    (True, 1, [], H, H),
    (1, 2, [], H, H),  # §2.1.4.2 step 1: empty proof
    (0, 0, [], EMPTY_ROOT, H),  # roots differ
    (1, 1, [], EMPTY_ROOT, H),
    (0, 0, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),  # roots agree, proof not empty
    (0, 1, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),
    (1, 1, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),
    (0, 5, [], H, H),  # an empty old tree must have the empty root
    (0, 0, [], b"", b""),
    (1, 1, [], b"x", b"x"),
    (0, 3, [], EMPTY_ROOT, b"short"),
    (1, 2, [b""], H, H),
    (1, 2, [None], H, H),
    (1, 2, None, H, H),
    (1, 2, H, H, H),
    (1, 2, [H, H], H, H),
    (3, 2**80, [H] * 10_000, H, H),
    (2**70 + 1, 2**71, [H] * 200, H, H),
]


@pytest.mark.parametrize("args", MALFORMED_CONSISTENCY)
def test_verify_consistency_rejects_malformed_input_without_raising(
    args: tuple[Any, ...],
) -> None:
    assert verify_consistency(*args) is False


def test_trivial_consistency_cases() -> None:
    # §2.1.4.1 defines proofs only for 0 < old < new; these need none. The CT Go and
    # C++ verifiers accept size 0 with *any* old root; we insist on MTH({}) (§2.1.1).
    root = _ct_root(5)
    assert verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    assert verify_consistency(0, 5, [], EMPTY_ROOT, root)
    assert verify_consistency(5, 5, [], root, root)
    assert consistency_proof(CT_LEAVES[:5], 0) == []
    assert consistency_proof(CT_LEAVES[:5], 5) == []
    assert consistency_proof([], 0) == []


def test_builders_raise_clear_value_errors() -> None:
    leaves = CT_LEAVES[:5]
    with pytest.raises(ValueError, match="outside a tree of size 0"):
        inclusion_proof([], 0)
    with pytest.raises(ValueError, match="leaf index 5 is outside a tree of size 5"):
        inclusion_proof(leaves, 5)
    with pytest.raises(ValueError, match="leaf index -1"):
        inclusion_proof(leaves, -1)
    with pytest.raises(ValueError, match="got 6 and 5"):
        consistency_proof(leaves, 6)
    with pytest.raises(ValueError, match="got -1 and 5"):
        consistency_proof(leaves, -1)
    with pytest.raises(ValueError, match="32 bytes"):
        root_hash([*leaves, b"short"])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactTree().append(cast(bytes, "not bytes"))


@pytest.mark.parametrize(
    ("size", "hashes", "message"),
    [
        (-1, [], "non-negative"),
        (True, [H], "non-negative"),
        (0, [H], "0 leaves has 0 frontier hashes, got 1"),
        (5, [H], "5 leaves has 2 frontier hashes, got 1"),
        (3, [H, H, H], "got 3"),
        (3, [H, H[:31]], "32-byte"),
        (1, ["00" * 32], "32-byte"),
    ],
)
def test_from_frontier_rejects_bad_state(size: Any, hashes: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompactTree.from_frontier(size, hashes)


def test_module_is_pure() -> None:
    # audit/ must not reach into gateway/ or policies/, and this module does no I/O.
    source = Path(audit.merkle.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"__future__", "hashlib", "hmac", "collections.abc", "typing"}

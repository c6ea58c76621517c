"""RFC 6962 / 9162 Merkle math: published vectors (transparency-dev/merkle), and brute force against a naive tree."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path

import pytest

from tiergate.core.log import merkle
from tiergate.core.log.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    TreeRangeError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from tiergate.errors import InputError, VerificationError

DATA = Path(__file__).parent / "data" / "merkle"
VECTORS = json.loads((DATA / "rfc6962_vectors.json").read_text())
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def b64(text: str) -> bytes:
    return base64.b64decode(text)


# --- an independent, literal RFC 6962 implementation (recursive, from entries) -----------------------------------


def naive_mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 writes it."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(entries[:k]) + naive_mth(entries[k:])).digest()


def naive_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    if len(entries) == 1:
        return []
    k = 1
    while k * 2 < len(entries):
        k *= 2
    if m < k:
        return naive_path(m, entries[:k]) + [naive_mth(entries[k:])]
    return naive_path(m - k, entries[k:]) + [naive_mth(entries[:k])]


def naive_subproof(m: int, entries: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2."""
    n = len(entries)
    if m == n:
        return [] if complete else [naive_mth(entries)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return naive_subproof(m, entries[:k], complete) + [naive_mth(entries[k:])]
    return naive_subproof(m - k, entries[k:], False) + [naive_mth(entries[:k])]


def flip(value: bytes, bit: int = 3) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


# --- published test data -----------------------------------------------------------------------------------------


def _probe_files(kind: str) -> list[Path]:
    return sorted((DATA / kind).rglob("*.json"))


def _run_inclusion_probe(probe: dict) -> None:
    index = probe["leafIdx"] if "leafIdx" in probe else probe["leafIndex"]
    proof = [b64(p) for p in probe["proof"] or []]
    verify_inclusion(b64(probe["leafHash"]), index, probe["treeSize"], proof, b64(probe["root"]))


def _run_consistency_probe(probe: dict) -> None:
    proof = [b64(p) for p in probe["proof"] or []]
    verify_consistency(probe["size1"], probe["size2"], b64(probe["root1"]), b64(probe["root2"]), proof)


@pytest.mark.parametrize("path", _probe_files("inclusion"), ids=lambda p: str(p.relative_to(DATA)))
def test_published_inclusion_probe(path: Path) -> None:
    probe = json.loads(path.read_text())
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            _run_inclusion_probe(probe)
    else:
        _run_inclusion_probe(probe)


@pytest.mark.parametrize("path", _probe_files("consistency"), ids=lambda p: str(p.relative_to(DATA)))
def test_published_consistency_probe(path: Path) -> None:
    probe = json.loads(path.read_text())
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            _run_consistency_probe(probe)
    else:
        _run_consistency_probe(probe)


def test_published_data_is_present() -> None:
    assert len(_probe_files("inclusion")) >= 15 and len(_probe_files("consistency")) >= 20
    happy = list(DATA.rglob("happy-path.json"))
    assert len(happy) == 10


def test_rfc6962_roots_for_sizes_1_to_8() -> None:
    leaves = [bytes.fromhex(x) for x in VECTORS["leaves"]]
    hashes = [leaf_hash(x) for x in leaves]
    tree = MerkleTree(hashes)
    for size, expected in enumerate(VECTORS["roots"], start=1):
        assert root_from_leaf_hashes(hashes[:size]).hex() == expected
        assert tree.root(size).hex() == expected
        assert naive_mth(leaves[:size]).hex() == expected


def test_rfc6962_generated_proofs_match_published_tables() -> None:
    hashes = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves"]]
    for vector in VECTORS["inclusion_proofs"]:
        index, size = vector["leaf"] - 1, vector["size"]
        assert [p.hex() for p in inclusion_proof(hashes, index, size)] == vector["proof"]
    for vector in VECTORS["consistency_proofs"]:
        proof = consistency_proof(hashes, vector["size1"], vector["size2"])
        assert [p.hex() for p in proof] == vector["proof"]


def _corrupt_inclusion(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    """transparency-dev/merkle's corruptInclusionProof recipe (proof/verify_test.go)."""
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, proof + [b""]),
        (index, size, root, leaf, proof + [root]),
        (index, size, root, leaf, [b""] + proof),
        (index, size, root, leaf, [root] + proof),
    ]
    for i in range(len(proof)):
        probes.append((index, size, root, leaf, proof[:i] + [flip(proof[i], 3)] + proof[i + 1 :]))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH] + proof[1:]))
    return probes


def _corrupt_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]):
    """transparency-dev/merkle's corruptConsistencyProof recipe (proof/verify_test.go)."""
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, proof + [b""]),
        (size1, size2, root1, root2, proof + [root1]),
        (size1, size2, root1, root2, proof + [root2]),
        (size1, size2, root1, root2, [b""] + proof),
        (size1, size2, root1, root2, [root1] + proof),
        (size1, size2, root1, root2, [root2] + proof),
        (size1, size2, root1, root2, [proof[0]] + proof),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        probes.append((size1, size2, root1, root2, proof[:i] + [flip(proof[i], 4)] + proof[i + 1 :]))
    return probes


def test_upstream_corruption_recipe_fails_on_every_published_vector() -> None:
    leaves = [bytes.fromhex(x) for x in VECTORS["leaves"]]
    roots = [bytes.fromhex(r) for r in VECTORS["roots"]]
    for vector in VECTORS["inclusion_proofs"]:
        index, size = vector["leaf"] - 1, vector["size"]
        proof = [bytes.fromhex(p) for p in vector["proof"]]
        leaf = leaf_hash(leaves[index])
        verify_inclusion(leaf, index, size, proof, roots[size - 1])
        for args in _corrupt_inclusion(index, size, proof, roots[size - 1], leaf):
            with pytest.raises(ProofError):
                verify_inclusion(args[3], args[0], args[1], args[4], args[2])
    for vector in VECTORS["consistency_proofs"]:
        size1, size2 = vector["size1"], vector["size2"]
        proof = [bytes.fromhex(p) for p in vector["proof"]]
        verify_consistency(size1, size2, roots[size1 - 1], roots[size2 - 1], proof)
        if not proof:
            continue
        for args in _corrupt_consistency(size1, size2, roots[size1 - 1], roots[size2 - 1], proof):
            with pytest.raises(ProofError):
                verify_consistency(*args[:4], args[4])


# --- brute force -------------------------------------------------------------------------------------------------

MAX_SIZE = 300
ENTRIES = [f"tiergate decision {i}".encode() for i in range(MAX_SIZE)]
LEAVES = [leaf_hash(e) for e in ENTRIES]


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    return MerkleTree(LEAVES)


@pytest.fixture(scope="module")
def roots() -> list[bytes]:
    """roots[n] = naive MTH of the first n entries, for n in 0..MAX_SIZE."""
    return [naive_mth(ENTRIES[:n]) for n in range(MAX_SIZE + 1)]


def test_roots_match_naive_for_every_size(tree: MerkleTree, roots: list[bytes]) -> None:
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT == roots[0] == root_from_leaf_hashes([])
    for n in range(1, MAX_SIZE + 1):
        compact.append(LEAVES[n - 1])
        assert compact.root() == roots[n], n
        assert tree.root(n) == roots[n], n
    assert root_from_leaf_hashes(LEAVES) == roots[MAX_SIZE]


def test_proofs_match_naive_rfc_definitions(tree: MerkleTree) -> None:
    for n in range(1, 65):
        for m in range(n):
            assert tree.inclusion_proof(m, n) == naive_path(m, ENTRIES[:n]), (m, n)
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == naive_subproof(m, ENTRIES[:n], True), (m, n)


CHUNKS = 4  # the brute-force loops are split so pytest-xdist can spread them over workers


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_every_inclusion_proof_verifies_up_to_300(tree: MerkleTree, roots: list[bytes], chunk: int) -> None:
    for n in range(1 + chunk, MAX_SIZE + 1, CHUNKS):
        for index in range(n):
            verify_inclusion(LEAVES[index], index, n, tree.inclusion_proof(index, n), roots[n])


def _old_sizes(n: int) -> list[int]:
    """Every old size for trees up to 160 leaves; above that a dense sample (keeps the file within its time budget):
    every 5th size, every power of two, the sizes next to them and next to n."""
    if n <= 160:
        return list(range(1, n + 1))
    sample = set(range(1, n + 1, 5)) | {n - 2, n - 1, n}
    power = 1
    while power <= n:
        sample |= {power - 1, power, power + 1}
        power *= 2
    return sorted(m for m in sample if 1 <= m <= n)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_consistency_proofs_verify_up_to_300(tree: MerkleTree, roots: list[bytes], chunk: int) -> None:
    for n in range(1 + chunk, MAX_SIZE + 1, CHUNKS):
        for m in _old_sizes(n):
            verify_consistency(m, n, roots[m], roots[n], tree.consistency_proof(m, n))


def _sample(n: int, rng: random.Random) -> set[int]:
    return {0, n - 1, n // 2, rng.randrange(n), rng.randrange(n)}


@pytest.mark.parametrize("chunk", range(2))
def test_tampered_inclusion_proofs_fail(tree: MerkleTree, roots: list[bytes], chunk: int) -> None:
    rng = random.Random(6962 + chunk)
    for n in range(1 + chunk, MAX_SIZE + 1, 2):
        for index in _sample(n, rng):
            proof = tree.inclusion_proof(index, n)
            leaf, root = LEAVES[index], roots[n]
            bad: list[tuple[bytes, int, int, list[bytes], bytes]] = []
            for i in range(len(proof)):
                for bit in (0, 7):
                    bad.append((leaf, index, n, proof[:i] + [flip(proof[i], bit)] + proof[i + 1 :], root))
            bad += [
                (flip(leaf), index, n, proof, root),
                (LEAVES[(index + 1) % MAX_SIZE], index, n, proof, root),
                (leaf, index, n, proof, flip(root)),
                (leaf, index, n, proof + [SOME_HASH], root),
                (leaf, index, n, [SOME_HASH] + proof, root),
                (leaf, n, n, proof, root),
            ]
            if proof:
                bad.append((leaf, index, n, proof[:-1], root))
            if n > 1:
                bad.append((leaf, index, n, proof, roots[n - 1]))
                bad.append((leaf, (index + 1) % n, n, proof, root))
            if n < MAX_SIZE:
                bad.append((leaf, index, n, proof, roots[n + 1]))
            for args in bad:
                with pytest.raises(ProofError):
                    verify_inclusion(*args)


@pytest.mark.parametrize("chunk", range(2))
def test_tampered_consistency_proofs_fail(tree: MerkleTree, roots: list[bytes], chunk: int) -> None:
    rng = random.Random(9162 + chunk)
    for n in range(2 + chunk, MAX_SIZE + 1, 2):
        for sampled in _sample(n - 1, rng) | {n - 1}:
            m = max(sampled, 1)
            proof = tree.consistency_proof(m, n)
            old, new = roots[m], roots[n]
            bad: list[tuple[int, int, bytes, bytes, list[bytes]]] = []
            for i in range(len(proof)):
                bad.append((m, n, old, new, proof[:i] + [flip(proof[i], 4)] + proof[i + 1 :]))
            bad += [
                (m, n, new, old, proof),
                (m, n, flip(old), new, proof),
                (m, n, old, flip(new), proof),
                (m, n, roots[m - 1] if m > 1 else SOME_HASH, new, proof),
                (m, n, old, roots[n - 1], proof),
                (m, n, old, new, proof[:-1]),
                (m, n, old, new, proof + [SOME_HASH]),
                (m, n, old, new, [SOME_HASH] + proof),
                (m, n, old, new, []),
                (n, m, new, old, proof),
            ]
            for args in bad:
                with pytest.raises(ProofError):
                    verify_consistency(*args)


# --- API behaviour -----------------------------------------------------------------------------------------------


def test_hash_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == VECTORS["roots"][0]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == VECTORS["roots"][1]


def test_compact_range_subtrees_and_resume(tree: MerkleTree) -> None:
    compact = CompactRange()
    compact.append_subtree(7, tree.subtree_root(7, 0))  # leaves 0..127
    compact.append_subtree(5, tree.subtree_root(5, 4))  # leaves 128..159
    compact.extend(LEAVES[160:171])
    assert compact.size == 171 and compact.root() == tree.root(171)
    resumed = CompactRange(compact.size, list(compact.hashes))
    resumed.extend(LEAVES[171:])
    assert resumed.root() == tree.root()
    with pytest.raises(TreeRangeError, match="not aligned"):
        compact.append_subtree(2, SOME_HASH)
    with pytest.raises(TreeRangeError, match="has 2 hashes"):
        CompactRange(3, [SOME_HASH])
    with pytest.raises(ProofError, match="31 bytes"):
        CompactRange().append(SOME_HASH[:31])


def test_range_errors_are_input_errors() -> None:
    with pytest.raises(TreeRangeError, match="outside a tree of size 3") as info:
        inclusion_proof(LEAVES[:3], 3)
    assert isinstance(info.value, InputError)
    with pytest.raises(TreeRangeError, match="larger than new tree size"):
        consistency_proof(LEAVES, 5, 4)
    with pytest.raises(TreeRangeError, match="empty tree"):
        consistency_proof(LEAVES, 0, 4)
    with pytest.raises(TreeRangeError, match="larger than the 3 leaf hashes"):
        inclusion_proof(LEAVES[:3], 0, 4)
    assert consistency_proof(LEAVES, 4, 4) == []
    with pytest.raises(TreeRangeError):
        inclusion_proof(LEAVES, -1)
    with pytest.raises(TreeRangeError, match="integer"):
        inclusion_proof(LEAVES, True)  # type: ignore[arg-type]


def test_proof_errors_are_precise_verification_errors(tree: MerkleTree) -> None:
    root = tree.root(8)
    proof = tree.inclusion_proof(5, 8)
    with pytest.raises(ProofError, match="too short") as info:
        verify_inclusion(LEAVES[5], 5, 8, proof[:-1], root)
    assert isinstance(info.value, VerificationError)
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(LEAVES[5], 5, 8, proof + [SOME_HASH], root)
    with pytest.raises(ProofError, match=r"proof\[1\] is 31 bytes"):
        verify_inclusion(LEAVES[5], 5, 8, [proof[0], proof[1][:31], proof[2]], root)
    with pytest.raises(ProofError, match="not the expected"):
        verify_inclusion(LEAVES[4], 5, 8, proof, root)
    with pytest.raises(ProofError, match="list of hashes"):
        verify_inclusion(LEAVES[5], 5, 8, b"".join(proof), root)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="forked"):
        verify_consistency(8, 8, root, tree.root(7), [])
    with pytest.raises(ProofError, match="cannot shrink"):
        verify_consistency(8, 7, root, tree.root(7), [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_merkle_tree_rejects_sizes_beyond_its_leaves(tree: MerkleTree) -> None:
    with pytest.raises(TreeRangeError, match="larger than the 300 leaves"):
        tree.root(301)
    assert merkle.MerkleTree().root() == EMPTY_ROOT

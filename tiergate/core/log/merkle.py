"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs, as pure functions.

The decision log is only worth something if an auditor can check it offline with nothing but these rules, so this
module follows the RFCs literally and depends on nothing but :mod:`hashlib`:

- leaf hash ``SHA-256(0x00 || entry)``, interior node ``SHA-256(0x01 || left || right)``, empty tree ``SHA-256("")``;
- the tree over ``n`` leaves splits at ``k``, the largest power of two below ``n`` (RFC 9162 section 2.1.1);
- inclusion and consistency proofs are generated as RFC 9162 sections 2.1.3.1 / 2.1.4.1 define them and verified
  with the algorithms of sections 2.1.3.2 / 2.1.4.2, step by step.

Proof *generation* is written against a :class:`SubtreeSource` (anything that can return the root of a perfect,
aligned subtree) so the same code serves an in-memory :class:`MerkleTree` and a database store that caches interior
hashes. :class:`CompactRange` computes a root while streaming leaf hashes in O(log n) memory, which is what an
audit of a large log needs.

Verification failures raise :class:`ProofError` with a one-line reason; asking for a proof that cannot exist (an
index outside the tree, a shrinking tree) raises :class:`TreeRangeError`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tiergate.errors import InputError, VerificationError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_TREE_SIZE = 1 << 63  # tree sizes are uint64 on the wire; keep index arithmetic far away from that edge


class ProofError(VerificationError):
    """An inclusion or consistency proof did not verify. The message says which check failed."""


class TreeRangeError(InputError):
    """A proof or root was asked for sizes or indices the tree does not have."""


# --- hashing -----------------------------------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || entry)``; the prefix keeps leaves and nodes from colliding."""
    return hashlib.sha256(LEAF_PREFIX + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The split point ``k`` of RFC 9162: the largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> bytes:
    if type(value) is bytes and len(value) == HASH_SIZE:
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProofError(f"{what} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes; a SHA-256 hash is {HASH_SIZE}")
    return value


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TreeRangeError(f"{what} must be an integer, not {type(value).__name__}")
    if value < 0 or value >= MAX_TREE_SIZE:
        raise TreeRangeError(f"{what} {value} is out of range (0 to 2^63-1)")
    return value


# --- streaming roots ---------------------------------------------------------------------------------------------


@dataclass
class CompactRange:
    """The roots of the perfect subtrees that cover leaves ``[0, size)``: one per set bit of ``size``.

    Why: a log of millions of entries can be audited by streaming its leaf hashes through ``append`` and reading
    :meth:`root` at any point, keeping at most 64 hashes in memory. ``append_subtree`` feeds a whole perfect
    subtree at once (used by stores that cache interior hashes).
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_size(self.size, "compact range size")
        if len(self.hashes) != self.size.bit_count():
            raise TreeRangeError(
                f"a compact range of size {self.size} has {self.size.bit_count()} hashes, not {len(self.hashes)}"
            )
        self.hashes = [_check_hash(h, f"compact range hash {i}") for i, h in enumerate(self.hashes)]

    def append(self, leaf_hash_value: bytes) -> None:
        """Add the next leaf (by its leaf hash, not its entry)."""
        self.append_subtree(0, leaf_hash_value)

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for value in leaf_hashes:
            self.append_subtree(0, value)

    def append_subtree(self, height: int, root: bytes) -> None:
        """Add a perfect subtree of ``2**height`` leaves given by its root; ``size`` must be a multiple of it."""
        width = 1 << height
        if self.size % width:
            raise TreeRangeError(f"cannot add a subtree of {width} leaves at position {self.size}: not aligned")
        merged = _check_hash(root, "subtree root")
        carry = self.size >> height
        while carry & 1:
            merged = node_hash(self.hashes.pop(), merged)
            carry >>= 1
        self.hashes.append(merged)
        self.size += width

    def root(self) -> bytes:
        """The RFC 6962 root of the leaves seen so far (the empty-tree hash when there are none)."""
        if not self.hashes:
            return EMPTY_ROOT
        merged = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            merged = node_hash(left, merged)
        return merged

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.hashes))


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a list of leaf hashes; ``SHA-256("")`` for none."""
    compact = CompactRange()
    compact.extend(leaf_hashes)
    return compact.root()


# --- proof generation --------------------------------------------------------------------------------------------


class SubtreeSource(Protocol):
    """Anything that can give the root of a perfect, aligned subtree of a tree that is at least that large."""

    def subtree_root(self, height: int, index: int) -> bytes:
        """Root of the subtree over leaves ``[index * 2**height, (index + 1) * 2**height)``."""
        ...


def range_root(source: SubtreeSource, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, assembled from the largest perfect aligned subtrees the source offers.

    A block may be used only if it is aligned both in the whole tree (so the source has it) and relative to
    ``start`` (so :class:`CompactRange` merges it where the RFC's recursive split would); ranges that occur in RFC
    proofs always start at a multiple of a power of two at least their length, so they use few, large blocks.
    """
    if not 0 <= start <= end:
        raise TreeRangeError(f"bad leaf range [{start}, {end})")
    if start == end:
        return EMPTY_ROOT
    # The CompactRange algorithm, inlined: this is the inner loop of every proof.
    stack: list[bytes] = []
    position = start
    while position < end:
        height = _block_height(position, start, end)
        value = source.subtree_root(height, position >> height)
        carry = (position - start) >> height
        while carry & 1:
            value = node_hash(stack.pop(), value)
            carry >>= 1
        stack.append(value)
        position += 1 << height
    value = stack.pop()
    while stack:
        value = node_hash(stack.pop(), value)
    return value


def _block_height(position: int, start: int, end: int) -> int:
    """Height of the largest perfect subtree at ``position`` aligned in the tree and in ``[start, end)``."""
    height = (end - position).bit_length() - 1
    for offset in (position, position - start):
        if offset:
            height = min(height, (offset & -offset).bit_length() - 1)
    return height


def inclusion_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form the inclusion proof of ``index`` in a tree of ``size`` (RFC 9162 2.1.3.1).

    Ordered from the leaf upwards, as the proof is.
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise TreeRangeError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start = start + k
    ranges.reverse()
    return ranges


def consistency_path_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form the consistency proof from ``old_size`` to ``new_size`` (RFC 9162 2.1.4.1).

    Empty when the sizes are equal. A proof from the empty tree is refused: every tree extends it, so there is
    nothing to prove and verifiers (RFC 9162, transparency-dev/merkle) reject such a request.
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise TreeRangeError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == new_size:
        return []
    if old_size == 0:
        raise TreeRangeError("no consistency proof from the empty tree: every tree is consistent with it")
    # SUBPROOF(m, D[start:end], b), unrolled: each step records the sibling range, deepest first after reversal.
    ranges: list[tuple[int, int]] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                ranges.append((start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    ranges.reverse()
    return ranges


def inclusion_proof_from(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the tree of ``size`` leaves held by ``source``."""
    return [range_root(source, start, end) for start, end in inclusion_path_ranges(index, size)]


def consistency_proof_from(source: SubtreeSource, old_size: int, new_size: int) -> list[bytes]:
    """Consistency proof between the trees of ``old_size`` and ``new_size`` leaves held by ``source``."""
    return [range_root(source, start, end) for start, end in consistency_path_ranges(old_size, new_size)]


class MerkleTree:
    """An in-memory tree that keeps every level, so proofs cost O(log n) after an O(n) build.

    Why: the pure list-based functions below and the brute-force tests need many proofs over one leaf list;
    recomputing subtrees from leaves for each proof would be quadratic.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append(value)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_hash_value: bytes) -> int:
        """Add a leaf hash; returns its index."""
        value = _check_hash(leaf_hash_value, f"leaf hash {self.size}")
        index = self.size
        self._levels[0].append(value)
        height, position = 0, index
        while position & 1:
            level = self._levels[height]
            parent = node_hash(level[position - 1], level[position])
            if len(self._levels) == height + 1:
                self._levels.append([])
            self._levels[height + 1].append(parent)
            height, position = height + 1, position >> 1
        return index

    def subtree_root(self, height: int, index: int) -> bytes:
        try:
            return self._levels[height][index]
        except IndexError:
            raise TreeRangeError(f"the tree has no complete subtree of height {height} at index {index}") from None

    def root(self, size: int | None = None) -> bytes:
        size = self._size_or_current(size)
        return range_root(self, 0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof_from(self, index, self._size_or_current(size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof_from(self, old_size, self._size_or_current(new_size))

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self.size
        _check_size(size, "tree size")
        if size > self.size:
            raise TreeRangeError(f"tree size {size} is larger than the {self.size} leaves known")
        return size


def _tree_for(leaf_hashes: Sequence[bytes], size: int | None) -> tuple[MerkleTree, int]:
    size = len(leaf_hashes) if size is None else _check_size(size, "tree size")
    if size > len(leaf_hashes):
        raise TreeRangeError(f"tree size {size} is larger than the {len(leaf_hashes)} leaf hashes given")
    return MerkleTree(leaf_hashes[:size]), size


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """Inclusion proof (RFC 9162 2.1.3.1) of leaf ``index`` in the tree of the first ``size`` leaf hashes."""
    tree, size = _tree_for(leaf_hashes, size)
    return tree.inclusion_proof(index, size)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """Consistency proof (RFC 9162 2.1.4.1) between the trees of the first ``old_size`` and ``new_size`` leaves."""
    tree, new_size = _tree_for(leaf_hashes, new_size)
    return tree.consistency_proof(old_size, new_size)


# --- proof verification (RFC 9162 section 2.1.3.2 and 2.1.4.2) ----------------------------------------------------


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    if isinstance(proof, (bytes, str)):
        raise ProofError("a proof is a list of hashes, not a single value")
    return [_check_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]


def root_from_inclusion_proof(leaf_hash_value: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-4); raises if the proof is malformed."""
    value = _check_hash(leaf_hash_value, "leaf hash")
    path = _check_proof(proof)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ProofError(f"leaf index {index!r} is not a non-negative integer")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ProofError(f"tree size {size!r} is not a non-negative integer")
    if index >= size:
        raise ProofError(f"leaf index {index} is not inside a tree of size {size}")
    fn, sn = index, size - 1
    result = value
    for position, sibling in enumerate(path):
        if sn == 0:
            raise ProofError(f"inclusion proof too long: {len(path)} hashes, only {position} used for index "
                             f"{index} in a tree of size {size}")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short: {len(path)} hashes for index {index} in a tree of size {size}")
    return result


def verify_inclusion(leaf_hash_value: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that the leaf with this hash is at ``index`` in the tree of ``size`` with this ``root``.

    Returns nothing; raises :class:`ProofError` with the reason when it is not proven.
    """
    expected = _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf_hash_value, index, size, proof)
    if not hmac.compare_digest(computed, expected):
        raise ProofError(
            f"inclusion proof for index {index} in a tree of size {size} leads to root {computed.hex()[:16]}..., "
            f"not the expected {expected.hex()[:16]}..."
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)`` (RFC 9162 2.1.4.2).

    Equal sizes need an empty proof and equal roots. A proof from the empty tree is refused (as RFC 9162 and
    transparency-dev/merkle do): it proves nothing, so a caller that trusts an empty tree should accept the new one
    without asking for a proof. Returns nothing; raises :class:`ProofError` with the reason.
    """
    path = _check_proof(proof)
    for value, what in ((old_size, "old tree size"), (new_size, "new tree size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProofError(f"{what} {value!r} is not a non-negative integer")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}: a log cannot shrink")
    if old_size == new_size:
        if path:
            raise ProofError(
                f"both trees have size {old_size}, so the proof must be empty; it has {len(path)} hash(es)"
            )
        for root, what in ((old_root, "old root hash"), (new_root, "new root hash")):
            if not isinstance(root, (bytes, bytearray, memoryview)):
                raise ProofError(f"{what} must be bytes, not {type(root).__name__}")
        if not hmac.compare_digest(bytes(old_root), bytes(new_root)):
            raise ProofError(f"two different roots for the same tree size {old_size}: the log forked")
        return
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless: every tree extends it")
    first = _check_hash(old_root, "old root hash")
    second = _check_hash(new_root, "new root hash")
    # 1. An empty path cannot prove anything between different non-empty sizes.
    if not path:
        raise ProofError(f"empty consistency proof between sizes {old_size} and {new_size}")
    # 2. If first is an exact power of 2, the old root is itself the first node of the path.
    if old_size & (old_size - 1) == 0:
        path = [first, *path]
    # 3-4. fn, sn: the last leaf of each tree; skip the levels where the old tree's last node is a right child.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5-6. Rebuild both roots along the path.
    fr = sr = path[0]
    for position, c in enumerate(path[1:], start=1):
        if sn == 0:
            raise ProofError(f"consistency proof too long: {len(path)} hashes, only {position} used "
                             f"between sizes {old_size} and {new_size}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. Both roots must match and the path must have reached the top of the new tree.
    if sn != 0:
        raise ProofError(f"consistency proof too short between sizes {old_size} and {new_size}")
    if not hmac.compare_digest(fr, first):
        raise ProofError(f"consistency proof does not lead to the old root at size {old_size}")
    if not hmac.compare_digest(sr, second):
        raise ProofError(f"consistency proof does not lead to the new root at size {new_size}")

"""Tiles: the stored roots of complete 256-leaf subtrees, the cache that makes proofs cheap, and the C2SP tlog-tiles
read layout (https://c2sp.org/tlog-tiles) they make cheap to serve.

Besides each leaf hash a store keeps the root of every complete 256-leaf subtree ("tile"). A root or proof at size N
then reads at most N/256 tile hashes and two 256-leaf blocks, not N leaf hashes: about a millisecond at N = 100 000,
where reading and hashing every leaf takes a few tenths of a second. Tiles are derived data: a missing one is
recomputed from its leaves, and :meth:`tiergate.core.log.store.LogStore.audit` recomputes them all.

Complete subtrees never change, so their hashes are cached for the life of a store (:class:`TileCache`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import merkle

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
#: tlog-tiles levels are 0..63; entry bundles prefix each entry with a 16-bit length, so hold entries up to this.
MAX_LEVEL = 63
MAX_BUNDLED_ENTRY = 0xFFFF
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")


@dataclass(frozen=True)
class TilePath:
    """A parsed ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``: level (None for entries), index, width."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    def leaf_range(self) -> tuple[int, int]:
        """The log entries ``[start, end)`` the tile's hashes (or the bundle's entries) span."""
        span = TILE_WIDTH ** (self.level or 0)
        first = self.index * TILE_WIDTH
        return first * span, (first + self.width) * span

    def path(self) -> str:
        parts = [f"{self.index // 1000 ** k % 1000:03d}" for k in range(_groups(self.index) - 1, -1, -1)]
        encoded = "/".join(("x" + p if i < len(parts) - 1 else p) for i, p in enumerate(parts))
        level = "entries" if self.level is None else str(self.level)
        return f"tile/{level}/{encoded}" + (f".p/{self.width}" if self.partial else "")

    @classmethod
    def parse(cls, path: str) -> TilePath | None:
        """The tile a path (without the leading slash) names, or None if it is not a well-formed tile path: every
        number in exactly one spelling, so one tile never has two cache entries."""
        parts = path.split("/")
        if len(parts) < 3 or parts[0] != "tile":
            return None
        level: int | None = None
        if parts[1] != "entries":
            if not _LEVEL.fullmatch(parts[1]) or int(parts[1]) > MAX_LEVEL:
                return None
            level = int(parts[1])
        rest, width = parts[2:], TILE_WIDTH
        if len(rest) >= 2 and rest[-2].endswith(".p"):
            if not _WIDTH.fullmatch(rest[-1]) or not 1 <= int(rest[-1]) < TILE_WIDTH:
                return None
            width = int(rest[-1])
            rest = rest[:-2] + [rest[-2][:-2]]
        digits = "".join(p[1:] for p in rest[:-1] if p.startswith("x")) + rest[-1]
        if len(digits) != 3 * len(rest) or not digits.isdigit() or not digits.isascii():
            return None
        index = int(digits)
        if len(rest) != _groups(index):  # x000/001 for 1 is another spelling of 001
            return None
        return cls(level, index, width)


def _groups(index: int) -> int:
    return max(1, (len(str(index)) + 2) // 3)


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as a tlog-tiles bundle: each a big-endian 16-bit length then its bytes. Raises ValueError for an
    entry over 65,535 bytes, which the format cannot hold."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_BUNDLED_ENTRY:
            raise ValueError(f"an entry of {len(entry)} bytes is over the {MAX_BUNDLED_ENTRY} a bundle can hold")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)

#: ``(start, end)`` -> the stored ``(tile, hash)`` pairs in that range (some may be missing).
FetchTiles = Callable[[int, int], list[tuple[int, bytes]]]
#: ``(start, end)`` -> exactly the leaf hashes ``[start, end)`` (raises if any is missing).
LeafHashes = Callable[[int, int], list[bytes]]


def completed_tiles(first: int, leaves: Sequence[bytes], earlier: LeafHashes) -> list[tuple[int, bytes]]:
    """The tiles completed by appending ``leaves`` (leaf hashes) at index ``first``, as ``(tile, hash)`` pairs.

    ``earlier`` reads the leaf hashes already stored below ``first`` in the tile being completed; backends pass one
    that reads inside their append transaction, and that raises if any is missing.
    """
    end = first + len(leaves)
    tiles: list[tuple[int, bytes]] = []
    for tile in range(first // TILE_WIDTH, end // TILE_WIDTH):
        start = tile * TILE_WIDTH
        before = earlier(start, first) if start < first else []
        newer = list(leaves[max(0, start - first) : start + TILE_WIDTH - first])
        tiles.append((tile, merkle.root_from_leaf_hashes(before + newer)))
    return tiles


class TileCache:
    """Hashes of complete tiles, and of the perfect subtrees above them, read once per store.

    ``lock`` is the store's (calls into the database are serialised by it); ``fetch_tiles`` and ``leaf_hashes`` read
    the store's database.
    """

    def __init__(self, lock: threading.RLock, fetch_tiles: FetchTiles, leaf_hashes: LeafHashes) -> None:
        self._lock = lock
        self._fetch_tiles = fetch_tiles
        self._leaf_hashes = leaf_hashes
        self._tiles: list[bytes] = []
        self._perfect: dict[tuple[int, int], bytes] = {}

    def tiles(self, count: int) -> list[bytes]:
        """Hashes of tiles ``[0, count)``: cached, read from the database, or recomputed if one is missing."""
        with self._lock:
            cache = self._tiles
            if len(cache) < count:
                stored = dict(self._fetch_tiles(len(cache), count))
                for tile in range(len(cache), count):
                    value = stored.get(tile)
                    if value is None:
                        start = tile * TILE_WIDTH
                        value = merkle.root_from_leaf_hashes(self._leaf_hashes(start, start + TILE_WIDTH))
                    cache.append(value)
            return cache[:count]

    def perfect(self, tiles: list[bytes], height: int, index: int) -> bytes:
        """Root of a perfect subtree of ``2**height`` leaves (height >= tile height) from tile hashes, memoised."""
        key = (height, index)
        with self._lock:
            cached = self._perfect.get(key)
        if cached is not None:
            return cached
        span = 1 << (height - TILE_HEIGHT)
        value = merkle.root_from_leaf_hashes(tiles[index * span : (index + 1) * span])
        if height > TILE_HEIGHT:
            with self._lock:
                self._perfect[key] = value
        return value


class Subtrees:
    """A store's tree at one size, as a :class:`merkle.SubtreeSource`.

    Perfect subtrees of at least one tile come from tile hashes (cached, since complete subtrees never change);
    smaller ones from one 256-leaf block of leaf hashes, fetched once per proof.
    """

    def __init__(self, cache: TileCache, leaf_hashes: LeafHashes, size: int) -> None:
        self._cache = cache
        self._leaf_hashes = leaf_hashes
        self._size = size
        self._tiles = cache.tiles(size // TILE_WIDTH)
        self._blocks: dict[int, list[bytes]] = {}

    def subtree_root(self, height: int, index: int) -> bytes:
        if height >= TILE_HEIGHT:
            return self._cache.perfect(self._tiles, height, index)
        first = index << height
        block = first >> TILE_HEIGHT
        leaves = self._blocks.get(block)
        if leaves is None:
            start = block * TILE_WIDTH
            leaves = self._leaf_hashes(start, min(self._size, start + TILE_WIDTH))
            self._blocks[block] = leaves
        offset = first - block * TILE_WIDTH
        return merkle.root_from_leaf_hashes(leaves[offset : offset + (1 << height)])

"""The read side: C2SP tlog-tiles served by a real ``gate serve`` and read by a client written here from the spec's
text (no tiergate code reads the tiles), and reads that are cached and bounded so they cannot starve decisions.

No tlog-tiles client installs here (none on the Python index; the Go ones, golang.org/x/mod/sumdb/tlog and
transparency-dev's, need a newer Go than the 1.19 Debian packages for this machine), so the client below follows
https://c2sp.org/tlog-tiles section by section, including its worked example (a tree of 70,000 entries: 273 full
level-0 tiles, a partial one of width 112, one full level-1 tile, a partial one of width 17 and a partial level-2
tile of width 1).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from pathlib import Path

import pytest
import requests

from tiergate.core.log.backends import open_store

from .conftest import Launcher, Server

SIZE = 70_000


# --- a tlog-tiles client, from the specification -----------------------------------------------------------------


def tile_path(level: int | str, index: int, width: int = 256) -> str:
    """``tile/<L>/<N>[.p/<W>]``: N in zero-padded 3-digit elements, all but the last prefixed with ``x``."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    encoded = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
    return f"tile/{level}/{encoded}" + (f".p/{width}" if width < 256 else "")


def tiles_for(size: int) -> list[tuple[int, int, int]]:
    """Every ``(level, index, width)`` a tree of ``size`` is made of: full tiles, then the partial one of each level
    (``floor(size / 256**l) mod 256`` wide; empty ones are not served)."""
    tiles, level = [], 0
    while 256 ** level <= size:
        full, partial = size // 256 ** (level + 1), (size // 256 ** level) % 256
        tiles += [(level, n, 256) for n in range(full)]
        if partial:
            tiles.append((level, full, partial))
        level += 1
    return tiles


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH(D[0:n]) from leaf hashes (RFC 6962 2.1), iteratively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Split at the largest power of two below n, recursively, is what RFC 6962 says; pairing left to right and
    # carrying an odd last node up gives the same tree.
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def bundle_entries(data: bytes) -> list[bytes]:
    entries, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 2], "big")
        entries.append(data[offset + 2:offset + 2 + length])
        offset += 2 + length
    assert offset == len(data)
    return entries


def test_the_spec_example_of_70000_entries() -> None:
    tiles = tiles_for(SIZE)
    assert len([t for t in tiles if t[0] == 0 and t[2] == 256]) == 273 and (0, 273, 112) in tiles
    assert (1, 0, 256) in tiles and (1, 1, 17) in tiles and (2, 0, 1) in tiles and len(tiles) == 277
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067" and tiles_for(256) == [(0, 0, 256), (1, 0, 1)]


# --- against the real service ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiles") / "log.db"
    with open_store(path) as store:
        store.append_many([b"entry %d" % n for n in range(SIZE)])
    return path


def test_a_tlog_tiles_client_reads_the_log_and_gets_the_checkpoint_root(start_server: Launcher, big_db: Path) -> None:
    server = start_server(big_db, "--reads-per-second", "0", "--read-share", "0")
    with requests.Session() as http:
        checkpoint = http.get(f"{server.url}/checkpoint", timeout=30)
        assert checkpoint.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert checkpoint.headers["Cache-Control"] == "public, max-age=1"
        _origin, size, root = checkpoint.text.split("\n")[:3]
        assert int(size) == SIZE
        fetched: dict[tuple[int, int, int], bytes] = {}
        for level, index, width in tiles_for(SIZE):
            answer = http.get(f"{server.url}/{tile_path(level, index, width)}", timeout=30)
            assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/octet-stream"
            expected = "public, max-age=31536000, immutable" if width == 256 else "public, max-age=1"
            assert answer.headers["Cache-Control"] == expected and len(answer.content) == 32 * width
            fetched[(level, index, width)] = answer.content
        leaves = [h for (level, _, _), data in sorted(fetched.items()) if level == 0
                  for h in (data[i:i + 32] for i in range(0, len(data), 32))]
        assert len(leaves) == SIZE and base64.b64encode(rfc6962_root(leaves)).decode() == root
        # Each hash of a level-1 tile is the root of a full level-0 tile, and so on up.
        for (level, index, width), data in fetched.items():
            for i in range(0 if level == 0 else width):
                below = fetched[(level - 1, index * 256 + i, 256)]
                assert data[32 * i:32 * i + 32] == rfc6962_root([below[j:j + 32] for j in range(0, 8192, 32)])
        # An entry bundle holds the entries that hash to the level-0 tile.
        bundle = http.get(f"{server.url}/{tile_path('entries', 273, 112)}", timeout=30)
        entries = bundle_entries(bundle.content)
        assert entries[0] == b"entry %d" % (273 * 256) and len(entries) == 112
        assert [hashlib.sha256(b"\x00" + e).digest() for e in entries] == leaves[273 * 256:]
        full = http.get(f"{server.url}/{tile_path('entries', 1)}", timeout=30)
        assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert bundle_entries(full.content)[255] == b"entry 511"
        # Not yet covered, or not a tile path in its one spelling: 404.
        for path in ("tile/0/274", "tile/0/273.p/113", "tile/0/x000/001", "tile/00/001", "tile/0/001.p/256",
                     "tile/entries/274", "tile/64/000"):
            assert http.get(f"{server.url}/{path}", timeout=30).status_code == 404, path


def test_a_bundle_cannot_hold_an_entry_over_64_kib(start_server: Launcher, tmp_path: Path) -> None:
    with open_store(tmp_path / "log.db") as store:
        store.append_many([b"small", b"x" * 70_000])
    server = start_server(tmp_path / "log.db")
    assert requests.get(f"{server.url}/tile/entries/000.p/1", timeout=30).status_code == 200
    refused = requests.get(f"{server.url}/tile/entries/000.p/2", timeout=30)
    reason = refused.json()["error"]
    assert refused.status_code == 404 and "65535" in reason and "/v1/log/entries" in reason
    assert requests.get(f"{server.url}/tile/0/000.p/2", timeout=30).status_code == 200


def _decide(server: Server, n: int) -> requests.Response:
    return requests.post(f"{server.url}/v1/decisions", timeout=30,
                         headers={"Authorization": f"Bearer {server.env.token}"},
                         json={"model": {"digest": "sha256:" + f"{n:064x}"}, "tier": "internal"})


def test_reads_are_served_the_published_checkpoint_not_a_fresh_signature(start_server: Launcher,
                                                                           tmp_path: Path) -> None:
    server = start_server(tmp_path / "log.db", "--checkpoint-interval", "60")
    first = requests.get(f"{server.url}/checkpoint", timeout=30).content
    assert _decide(server, 1).status_code == 200
    for _ in range(5):  # however many read it, the checkpoint is not signed again before the interval is over
        assert requests.get(f"{server.url}/v1/log/checkpoint", timeout=30).content == first
    # 3 entries: the policy and trust store the decision cites, then the decision.
    assert requests.get(f"{server.url}/v1/healthz", timeout=30).json()["tree_size"] == 3


def test_public_reads_are_bounded_per_client_and_decisions_are_not(start_server: Launcher, tmp_path: Path) -> None:
    server = start_server(tmp_path / "log.db", "--reads-per-second", "2")  # bursts of 4
    with requests.Session() as http:
        # Reads yield to decisions only: on an idle service they are not held back at all.
        assert all(http.get(f"{server.url}/checkpoint", timeout=30).status_code == 200 for _ in range(8))
        assert _decide(server, 100).status_code == 200  # deciding now: reads get their share for a second
        statuses = [http.get(f"{server.url}/checkpoint", timeout=30) for _ in range(6)]
        refused = [s for s in statuses if s.status_code == 429]
        assert refused and refused[0].headers["Retry-After"] == "1" and "public requests" in refused[0].json()["error"]
        assert statuses[0].status_code == 200
        assert all(_decide(server, n).status_code == 200 for n in range(6))  # authenticated: never limited by it


def test_one_client_cannot_hold_every_connection(start_server: Launcher, tmp_path: Path) -> None:
    server = start_server(tmp_path / "log.db", "--max-client-connections", "2")
    port = int(server.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.3)  # both accepted and held by their threads
        with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
            third.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert third.recv(4096).startswith(b"HTTP/1.1 503")
        # Another address (loopback has all of 127/8) is served meanwhile.
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0)) as other:
            other.sendall(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert other.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for sock in idle:
            sock.close()

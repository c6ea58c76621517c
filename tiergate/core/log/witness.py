"""A C2SP tlog-witness: cosign a log's checkpoint only if it is consistent with the last one cosigned for that log.

https://c2sp.org/tlog-witness, ``add-checkpoint``. The witness is configured with the logs it watches (origin and
log key); for each it keeps the latest checkpoint it cosigned, and it accepts a new one only with a consistency
proof from that one. Two checkpoints of one size with different roots (a fork) are refused with a conflict, so a
log that shows two histories can get cosignatures for at most one of them from each honest witness.

The check and the update are one step under a lock, and the state is written (to a temporary file, fsynced, renamed)
before the cosignature is returned: a witness that crashes after answering cannot forget what it cosigned, and two
concurrent requests cannot roll the state back (the race the spec describes).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tiergate.core.files import read_limited
from tiergate.errors import ConfigError, InputError, VerificationError

from . import merkle
from .checkpoint import (
    Checkpoint,
    NoteFormatError,
    NoteVerifier,
    open_note,
    parse_checkpoint,
)
from .cosignature import Cosignature, WitnessSigner

MAX_PROOF_LINES = 63  # the spec's limit on consistency proof lines
MAX_REQUEST = 1 << 20
MAX_STATE_BYTES = 64 * 1024 * 1024
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


class WitnessRefusal(InputError):
    """The witness will not cosign; ``status`` is the HTTP status the spec gives the case, ``size`` the witness's
    latest cosigned size on a conflict about the old size (sent back so the log can retry from it)."""

    def __init__(self, status: int, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed ``add-checkpoint`` request body: old size, consistency proof, and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes

    def encode(self) -> bytes:
        lines = [f"old {self.old_size}"] + [base64.b64encode(h).decode("ascii") for h in self.proof]
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.note

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """Strict parse; raises :class:`WitnessRefusal` (400) with the reason."""
        if len(body) > MAX_REQUEST:
            raise WitnessRefusal(400, f"the request is {len(body)} bytes; the limit is {MAX_REQUEST}")
        head, sep, note = body.partition(b"\n\n")
        if not sep:
            raise WitnessRefusal(400, "no empty line between the old size and proof lines and the checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise WitnessRefusal(400, "the old size and proof lines are not ASCII") from None
        match = _OLD.fullmatch(lines[0])
        if not match or int(match.group(1)) > (1 << 64) - 1:
            raise WitnessRefusal(400, f"the first line must be 'old <size>' in decimal, not {lines[0][:40]!r}")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise WitnessRefusal(400, f"{len(lines) - 1} consistency proof lines; at most {MAX_PROOF_LINES} are "
                                      "allowed")
        proof = []
        for number, line in enumerate(lines[1:], 2):
            try:
                raw = base64.b64decode(line, validate=True)
            except ValueError:
                raw = b""
            if len(raw) != merkle.HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
                raise WitnessRefusal(400, f"line {number} is not a base64 SHA-256 hash")
            proof.append(raw)
        return cls(int(match.group(1)), tuple(proof), note)


@dataclass(frozen=True)
class WatchedLog:
    """A log the witness cosigns for: its origin and the key(s) its checkpoints must be signed with."""

    origin: str
    keys: tuple[NoteVerifier, ...]


def load_witness_config(path: Path) -> dict[str, WatchedLog]:
    """The logs a witness watches, from a JSON file ``{"logs": [{"origin": ..., "keys": [vkey, ...]}]}``.

    Raises ConfigError with the file and what is wrong.
    """
    try:
        data = json.loads(read_limited(path, "witness config", 1 << 20))
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}") from None
    logs = data.get("logs") if isinstance(data, dict) else None
    if not isinstance(logs, list) or not logs:
        raise ConfigError(f"{path}: expected {{\"logs\": [{{\"origin\": ..., \"keys\": [VKEY, ...]}}, ...]}}")
    watched: dict[str, WatchedLog] = {}
    for number, item in enumerate(logs, 1):
        where = f"{path}: log {number}"
        if not isinstance(item, dict) or set(item) != {"origin", "keys"}:
            raise ConfigError(f"{where}: needs exactly 'origin' and 'keys'")
        origin, keys = item["origin"], item["keys"]
        if not isinstance(origin, str) or not origin or origin in watched:
            raise ConfigError(f"{where}: 'origin' must be a non-empty text, once per log")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{where}: 'keys' must be a non-empty list of vkeys")
        watched[origin] = WatchedLog(origin, tuple(NoteVerifier.from_vkey(k, where) for k in keys))
    return watched


class WitnessState:
    """The latest cosigned ``(size, root)`` per origin, kept in a JSON file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._latest: dict[str, tuple[int, bytes]] = {}
        if path.exists():
            try:
                data = json.loads(read_limited(path, "witness state", MAX_STATE_BYTES))
                for origin, value in data["logs"].items():
                    root = base64.b64decode(value["root"], validate=True)
                    if not isinstance(value["size"], int) or len(root) != merkle.HASH_SIZE:
                        raise ValueError(origin)
                    self._latest[origin] = (value["size"], root)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # Never start afresh over a state we cannot read: that would let a fork through.
                raise ConfigError(f"{path}: the witness state is unreadable ({exc!r}); restore it from a backup "
                                  "(starting without it would forget what was cosigned)") from None

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        return self._latest.get(origin)

    def update(self, origin: str, size: int, root: bytes) -> None:
        """Record and persist; raises OSError if the state cannot be written (then nothing is cosigned)."""
        latest = dict(self._latest)
        latest[origin] = (size, root)
        body = json.dumps({"logs": {o: {"size": s, "root": base64.b64encode(r).decode("ascii")}
                                    for o, (s, r) in sorted(latest.items())}}, indent=1).encode("utf-8")
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=".witness-state-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        self._latest = latest


class Witness:
    """The ``add-checkpoint`` logic, free of HTTP: verify, check consistency, persist, cosign."""

    def __init__(self, signer: WitnessSigner, logs: Mapping[str, WatchedLog], state: WitnessState,
                 clock: Callable[[], float]) -> None:
        self.signer = signer
        self.logs = dict(logs)
        self.state = state
        self.clock = clock
        self._lock = threading.Lock()

    def add_checkpoint(self, request: AddCheckpoint) -> Cosignature:
        """Cosign ``request``'s checkpoint or raise :class:`WitnessRefusal` with the spec's status:
        404 unknown log, 403 no valid log signature, 400 old size above the new one, 409 old size not the latest
        cosigned (or same size, other root: a fork), 422 consistency proof does not verify."""
        try:
            checkpoint, _ = parse_checkpoint(request.note)
        except NoteFormatError as exc:
            raise WitnessRefusal(400, f"malformed checkpoint: {exc}") from None
        log = self.logs.get(checkpoint.origin)
        if log is None:
            raise WitnessRefusal(404, f"this witness does not watch log {checkpoint.origin[:200]!r}")
        try:
            open_note(request.note, log.keys)
        except (VerificationError, ConfigError, InputError) as exc:
            raise WitnessRefusal(403, f"the checkpoint is not signed by the log's key: {exc}") from None
        if request.old_size > checkpoint.size:
            raise WitnessRefusal(400, f"old size {request.old_size} is larger than the checkpoint's {checkpoint.size}")
        with self._lock:
            latest = self.state.latest(checkpoint.origin)
            size, root = latest if latest is not None else (0, merkle.EMPTY_ROOT)
            if request.old_size != size:
                raise WitnessRefusal(409, f"old size {request.old_size} is not the latest cosigned size {size}", size)
            self._check_consistency(size, root, checkpoint, request.proof)
            self.state.update(checkpoint.origin, checkpoint.size, checkpoint.root_hash)
            return self.signer.cosign(checkpoint, int(self.clock()))

    @staticmethod
    def _check_consistency(size: int, root: bytes, checkpoint: Checkpoint, proof: tuple[bytes, ...]) -> None:
        if size == checkpoint.size:
            if root != checkpoint.root_hash:
                # No size body: the old size was right, so retrying from it cannot help; the reason can.
                raise WitnessRefusal(409, f"a checkpoint of size {size} with another root was cosigned before: "
                                          "the log has forked")
            if proof:
                raise WitnessRefusal(422, "the proof must be empty when the size has not changed")
            return
        if size == 0:
            if proof:
                raise WitnessRefusal(422, "the proof must be empty when the old size is zero")
            return
        try:
            merkle.verify_consistency(size, checkpoint.size, root, checkpoint.root_hash, list(proof))
        except (VerificationError, InputError) as exc:
            raise WitnessRefusal(422, f"the consistency proof from size {size} does not verify: {exc}") from None


def size_body(size: int) -> bytes:
    """The ``text/x.tlog.size`` body of a 409 answer."""
    return f"{size}\n".encode("ascii")


def parse_size_body(data: bytes) -> int | None:
    text = data.decode("ascii", "replace")
    return int(text[:-1]) if text.endswith("\n") and text[:-1].isdigit() and len(text) < 22 else None

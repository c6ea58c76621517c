"""``gate witness`` over HTTP (C2SP tlog-witness ``POST /add-checkpoint``), and the client a gate service uses to
collect cosignatures from its witnesses.

The server answers exactly the spec's statuses (200 cosignature lines, 400, 403, 404, 409 with a
``text/x.tlog.size`` body, 422) and nothing else; a request is read only up to its bounded Content-Length, within a
read timeout. The client (:class:`WitnessClient`) keeps the size each witness last cosigned, learns it from a 409
when it does not know it, sends the consistency proof from there, and keeps only cosignatures that verify against
the witness key it was configured with.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tiergate.core.log.checkpoint import (
    Checkpoint,
    NoteFormatError,
    SignedNote,
    parse_checkpoint,
)
from tiergate.core.log.cosignature import (
    Cosignature,
    WitnessVerifier,
    parse_cosignature_lines,
)
from tiergate.core.log.witness import (
    MAX_REQUEST,
    AddCheckpoint,
    Witness,
    WitnessRefusal,
    parse_size_body,
    size_body,
)

SIZE_TYPE = "text/x.tlog.size"
TEXT_TYPE = "text/plain; charset=utf-8"
READ_TIMEOUT = 10.0


class WitnessHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], witness: Witness) -> None:
        self.witness = witness
        super().__init__(address, _WitnessHandler)


class _WitnessHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tiergate-witness"
    sys_version = ""
    timeout = READ_TIMEOUT
    server: WitnessHTTPServer

    def do_POST(self) -> None:
        status, body, content_type = self._add_checkpoint()
        self._reply(status, body, content_type)

    def _add_checkpoint(self) -> tuple[int, bytes, str]:
        """Status, body and content type of the answer to this POST."""
        if urlsplit(self.path).path != "/add-checkpoint":
            return 404, b"only POST /add-checkpoint is served\n", TEXT_TYPE
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or len(self.headers.get_all("Content-Length") or []) != 1:
            self.close_connection = True
            return 411, b"a single Content-Length is required\n", TEXT_TYPE
        if int(length) > MAX_REQUEST:
            self.close_connection = True
            return 413, f"the request is over {MAX_REQUEST} bytes\n".encode("ascii"), TEXT_TYPE
        body = self.rfile.read(int(length))
        try:
            cosignature = self.server.witness.add_checkpoint(AddCheckpoint.parse(body))
        except WitnessRefusal as exc:
            if exc.status == 409 and exc.size is not None:
                return 409, size_body(exc.size), SIZE_TYPE
            return exc.status, f"{exc}\n".encode(), TEXT_TYPE
        except OSError as exc:  # the state could not be persisted: nothing was cosigned
            print(f"gate witness: cannot write the state: {exc}", file=sys.stderr, flush=True)
            return 503, b"the witness cannot persist its state; nothing was cosigned\n", TEXT_TYPE
        return 200, cosignature.line().encode("utf-8"), TEXT_TYPE

    def do_GET(self) -> None:
        self._reply(405, b"use POST /add-checkpoint\n")

    def _reply(self, status: int, body: bytes, content_type: str = TEXT_TYPE) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        pass  # refusals are answered to the log that asked; the witness's own output stays quiet


@dataclass
class WitnessClient:
    """One witness a gate service asks to cosign: where it is and the key its cosignatures must verify with."""

    url: str
    verifier: WitnessVerifier
    timeout: float = 5.0
    _size: int = field(default=0, repr=False)  # the size the witness last cosigned, as far as we know

    def cosign(self, note: bytes, proof: Callable[[int, int], Sequence[bytes]]) -> Cosignature:
        """This witness's cosignature on the signed checkpoint ``note``; ``proof(old, new)`` gives consistency proofs.

        Raises :class:`WitnessRefusal` (the witness refused, or answered with nothing valid) or OSError (unreachable).
        """
        checkpoint, _ = parse_checkpoint(note)
        for _attempt in range(2):  # a 409 tells the size the witness holds: one retry from there
            old = self._size if self._size <= checkpoint.size else 0
            hashes = proof(old, checkpoint.size) if 0 < old < checkpoint.size else []
            status, content_type, body = self._post(AddCheckpoint(old, tuple(hashes), note).encode())
            if status == 409 and content_type.startswith(SIZE_TYPE):
                known = parse_size_body(body)
                if known is None or known == old or known > checkpoint.size:
                    raise WitnessRefusal(409, f"witness {self.verifier.name} refused: it holds size {known}, which "
                                              f"is {'not' if known is None else 'ahead of or'} consistent here")
                self._size = known
                continue
            if status != 200:
                reason = body.decode("utf-8", "replace").strip()[:300]
                raise WitnessRefusal(status, f"witness {self.verifier.name} refused ({status}): {reason}")
            return self._verified(checkpoint, body)
        raise WitnessRefusal(409, f"witness {self.verifier.name} kept answering 409")

    def _verified(self, checkpoint: Checkpoint, body: bytes) -> Cosignature:
        try:
            lines = parse_cosignature_lines(body)
        except NoteFormatError as exc:
            raise WitnessRefusal(502, f"witness {self.verifier.name} answered something else: {exc}") from None
        for line in lines:
            if (line.name, line.key_id) != (self.verifier.name, self.verifier.key_id):
                continue
            try:
                cosignature = Cosignature.from_note_signature(line)
            except NoteFormatError:
                continue
            if self.verifier.verify(checkpoint.body(), cosignature):
                self._size = checkpoint.size
                return cosignature
        raise WitnessRefusal(502, f"witness {self.verifier.name} answered without a valid cosignature by its key")

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
        parts = urlsplit(self.url.rstrip("/") + "/add-checkpoint")
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OSError(f"witness URL {self.url!r} is not http(s)://HOST[:PORT][/PREFIX]")
        connection = kind(parts.hostname, parts.port, timeout=self.timeout)
        try:
            connection.request("POST", parts.path, body, {"Content-Type": "text/plain"})
            answer = connection.getresponse()
            return answer.status, answer.getheader("Content-Type", ""), answer.read(64 * 1024)
        except http.client.HTTPException as exc:
            raise OSError(f"witness {self.url}: {exc}") from None
        finally:
            connection.close()


def collect_cosignatures(note: bytes, witnesses: Sequence[WitnessClient],
                         proof: Callable[[int, int], Sequence[bytes]]) -> tuple[bytes, list[str]]:
    """``note`` with the cosignatures of every witness that gave one (asked in parallel), and the reasons of those
    that did not. A witness that refuses never blocks the others; the log's own signature stays first."""
    results: list[Cosignature | str] = [""] * len(witnesses)

    def ask(position: int, witness: WitnessClient) -> None:
        try:
            results[position] = witness.cosign(note, proof)
        except (WitnessRefusal, OSError, NoteFormatError) as exc:
            results[position] = f"{witness.url}: {exc}"

    threads = [threading.Thread(target=ask, args=(i, w), daemon=True) for i, w in enumerate(witnesses)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + max((w.timeout for w in witnesses), default=0) * 2 + 1
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    parsed = SignedNote.parse(note)
    lines = [c.line() for c in results if isinstance(c, Cosignature)]
    problems = [r if isinstance(r, str) and r else f"{w.url}: no answer in time"
                for r, w in zip(results, witnesses, strict=True) if not isinstance(r, Cosignature)]
    text = parsed.text + "\n" + "".join(s.line() for s in parsed.signatures) + "".join(lines)
    return text.encode("utf-8"), problems

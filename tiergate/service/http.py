"""The HTTP server: stdlib ``ThreadingHTTPServer``, keep-alive, body limits, bearer tokens, JSON errors.

Every way a request can go wrong ends in a JSON ``{"error": ...}`` with a fitting status (400 malformed, 401 no or
bad token, 404/405 unknown endpoint or method, 408 not received in time, 411 no length, 413 too large, 415 not JSON,
431 header block too large, 503 log unavailable or too many connections), never a traceback on the wire. An
unexpected exception is a 500 with a generic message; its traceback goes to the server's stderr only.

What a client can make the server spend, before and without a valid token:

- **Connections.** At most ``max_connections`` at once, one thread each, and at most ``max_client_connections`` of
  them from one client address (so one client's idle connections cannot take every slot); one more is answered 503
  at once (by the accepting thread, no thread of its own) and closed.
- **Public reads.** Requests to routes that need no token are limited per client address to ``reads_per_second``
  and to ``read_share`` seconds of serving time per second (token buckets holding two seconds' worth; a request is
  charged the CPU time its thread spent on it, so a costly page counts for what it costs and a wait on the database
  for nothing): more are answered 429 with ``Retry-After``.
  All public requests together are held to ``3 * read_share`` seconds a second the same way, so many readers from
  many addresses cannot crowd out the deciders either. Decisions and submissions (authenticated) are never limited
  by it, and the bounds yield to them only: while no authenticated request is in flight or began in the last
  :data:`WRITE_QUIET` seconds, public requests are served freely and charged nothing (an auditor reading the
  whole log from an idle service goes at full speed).
- **Time.** Each read waits at most :data:`READ_TIMEOUT` seconds (so does an idle keep-alive connection), and a whole
  request, from its first byte to the end of its body, must arrive within ``request_timeout`` seconds however slowly
  it trickles in (a 408, then the connection is closed).
- **Memory.** The request line and headers together are read up to :data:`MAX_HEADER_BYTES`. A body is read only
  after the route is known and the request is authenticated (bearer token; for the webhook: enabled and the right
  secret; ``Expect: 100-continue`` is answered only then), within that route's limit, and in chunks as it arrives
  (a Content-Length alone allocates nothing).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import socket
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import BoundedSemaphore, Lock
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tiergate import __version__
from tiergate.core.log.merkle import TreeRangeError
from tiergate.core.log.store import LogHoleError, StoreError, StoreIntegrityError
from tiergate.errors import GateError, InputError, VerificationError
from tiergate.runtime.reload import ConfigurationBroken
from tiergate.service.app import GateService
from tiergate.service.responses import JSON_TYPE, ApiError, Response
from tiergate.service.routes import Request, Route, route_for

DEFAULT_MAX_BODY = 16 * 1024 * 1024
#: Connections served at once (one thread each); more are answered 503 and closed. Twice the 64 clients of the
#: benchmark: an idle keep-alive connection or a health probe holds a slot too, and a cap with no room to spare
#: leaves one busy client refused again and again.
DEFAULT_MAX_CONNECTIONS = 128
#: Public (unauthenticated) requests per second one client address may make, on average; 0: unlimited.
DEFAULT_READS_PER_SECOND = 500.0
#: Seconds of serving time per second one client address's public requests may take, on average (0: unlimited):
#: a tenth of a core, so even a reader asking only for the costliest pages leaves the deciders the rest.
DEFAULT_READ_SHARE = 0.1
#: Seconds since the last authenticated request began after which public reads are no longer held to their share.
WRITE_QUIET = 1.0
#: Seconds from a request's first byte to the end of its body, however the bytes trickle in.
DEFAULT_REQUEST_TIMEOUT = 60.0
#: Seconds one read may wait for bytes, and an idle keep-alive connection for its next request.
READ_TIMEOUT = 30.0
#: Bytes of request line and headers together (with what is read ahead of the body) at most.
MAX_HEADER_BYTES = 64 * 1024
#: Bytes of a body read from the socket at a time: memory grows with what arrives, not with what is announced.
_BODY_CHUNK = 64 * 1024
#: Closing with a body unread, the server first drains up to this many bytes for up to this many seconds, so the
#: error it sent is not lost to the connection reset that closing on unread data causes.
_LINGER_BYTES = 1024 * 1024
_LINGER_SECONDS = 1.0
_CONTENT_LENGTH = re.compile(r"[0-9]{1,10}")
_BUSY_BODY = b'{"error":"the gate service is serving as many connections as it allows; retry shortly"}\n'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
         + str(len(_BUSY_BODY)).encode("ascii") + b"\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + _BUSY_BODY)


class GateHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the benchmark opens 64 connections at once; the default backlog of 5 drops them

    def __init__(self, address: tuple[str, int], service: GateService, max_body: int = DEFAULT_MAX_BODY, *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, max_client_connections: int | None = None,
                 reads_per_second: float = DEFAULT_READS_PER_SECOND, read_share: float = DEFAULT_READ_SHARE) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        # Three quarters by default: the benchmark's 64 clients on one address fit in 128, one idle flood does not.
        self.max_client_connections = max_client_connections or max(1, max_connections * 3 // 4)
        if self.max_client_connections < 1 or reads_per_second < 0 or read_share < 0:
            raise ValueError("max_client_connections must be at least 1, reads_per_second and read_share not "
                             "negative")
        self._per_client: dict[str, int] = {}
        self._per_client_lock = Lock()
        self.read_limit = ReadLimiter(reads_per_second, read_share)
        self._writes_in_flight = 0
        self._last_write = float("-inf")
        self.all_reads = ReadLimiter(0.0, 3 * read_share)  # every address together, under the key ""
        if not request_timeout > 0 or not read_timeout > 0:
            raise ValueError("timeouts must be positive")
        self.service = service
        self.max_body = max_body
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.read_timeout = read_timeout
        self._slots = BoundedSemaphore(max_connections)
        super().__init__(address, GateRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection if a slot is free; otherwise a 503 from this (the accepting) thread."""
        client = str(client_address[0]) if isinstance(client_address, tuple) else ""
        with self._per_client_lock:
            held = self._per_client.get(client, 0)
            admitted = held < self.max_client_connections and self._slots.acquire(blocking=False)
            if admitted:
                self._per_client[client] = held + 1
        if not admitted:
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(client)  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(str(client_address[0]) if isinstance(client_address, tuple) else "")

    def begin_write(self) -> None:
        with self._per_client_lock:
            self._writes_in_flight += 1
            self._last_write = time.monotonic()

    def end_write(self) -> None:
        with self._per_client_lock:
            self._writes_in_flight -= 1

    def writes_quiet(self) -> bool:
        """No authenticated request in flight, and none began in the last :data:`WRITE_QUIET` seconds."""
        with self._per_client_lock:
            return not self._writes_in_flight and time.monotonic() - self._last_write > WRITE_QUIET

    def _release(self, client: str) -> None:
        with self._per_client_lock:
            left = self._per_client.get(client, 1) - 1
            if left > 0:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is routine; anything else is printed as socketserver does."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class ReadLimiter:
    """Token buckets per client address for public requests: ``rate`` requests and ``share`` seconds of serving time
    a second, each holding two seconds' worth. A request is admitted while both buckets have something left, and is
    charged its serving time afterwards (so the time bucket can go into debt, which the next requests wait out).

    Buckets of clients quiet for a while are forgotten, so the table stays as small as the set of active readers.
    """

    def __init__(self, rate: float, share: float = 0.0) -> None:
        self.rate = rate
        self.share = share
        self._buckets: dict[str, tuple[float, float, float]] = {}  # requests, seconds, when last updated
        self._lock = Lock()
        self._swept = time.monotonic()

    def _refill(self, client: str, now: float) -> tuple[float, float]:
        full = (max(1.0, 2 * self.rate), 2 * self.share)
        requests_left, seconds_left, then = self._buckets.get(client, (*full, now))
        return (min(full[0], requests_left + (now - then) * self.rate),
                min(full[1], seconds_left + (now - then) * self.share))

    def admit(self, client: str) -> bool:
        if self.rate <= 0 and self.share <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            requests_left, seconds_left = self._refill(client, now)
            admitted = (self.rate <= 0 or requests_left >= 1.0) and (self.share <= 0 or seconds_left > 0)
            self._buckets[client] = (requests_left - (1.0 if admitted else 0.0), seconds_left, now)
            if now - self._swept > 60:  # a full bucket is the same as no bucket
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[2] < 60}
                self._swept = now
            return admitted

    def charge(self, client: str, seconds: float) -> None:
        """Count ``seconds`` of serving time against ``client``'s share."""
        if self.share <= 0:
            return
        now = time.monotonic()
        with self._lock:
            requests_left, seconds_left = self._refill(client, now)
            # In debt by at most two seconds' worth: one costly request is waited out in seconds, not minutes.
            self._buckets[client] = (requests_left, max(-2 * self.share, seconds_left - seconds), now)


def _linger(sock: socket.socket) -> None:
    """Stop sending, and read (and drop) what the client still sends, within bounds, before the socket is closed."""
    try:
        sock.shutdown(socket.SHUT_WR)
        until, left = time.monotonic() + _LINGER_SECONDS, _LINGER_BYTES
        while left > 0:
            wait = until - time.monotonic()
            if wait <= 0:
                break
            sock.settimeout(wait)
            data = sock.recv(min(left, 1 << 16))
            if not data:
                break
            left -= len(data)
    except OSError:
        pass


def _refuse_busy(sock: socket.socket) -> None:
    """Answer 503 without blocking the accepting thread: the answer fits any socket buffer; a failure is ignored."""
    try:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, InterruptedError):
            sock.recv(1 << 16)  # what the client already sent: unread data would turn our close into a reset
        sock.send(_BUSY)
    except OSError:
        pass


class _HeaderTooLarge(http.client.LineTooLong):
    """The request line and headers went over :data:`MAX_HEADER_BYTES` (the stdlib parser answers it with a 431)."""

    def __init__(self) -> None:
        http.client.HTTPException.__init__(self, f"request line and headers over {MAX_HEADER_BYTES} bytes")


class _Reader(io.RawIOBase):
    """The connection's reads: each bounded by a timeout, a whole request by a deadline, its header block by a budget.

    Used under a ``BufferedReader`` as the handler's ``rfile``; the handler sets :attr:`deadline` when a request's
    first byte arrives and :attr:`budget` (bytes the header block may still take) while headers are parsed.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self.timeout = timeout
        self.deadline: float | None = None
        self.budget: int | None = None
        self.expired = False  # the deadline passed
        self.timed_out = False  # a read timed out (per read or at the deadline)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wait, at_deadline = self.timeout, False
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = self.timed_out = True
                raise TimeoutError("the request did not arrive within the time allowed")
            wait, at_deadline = min(wait, left), left <= wait
        view = memoryview(buffer).cast("B")
        if self.budget is not None:
            if self.budget <= 0:
                raise _HeaderTooLarge
            view = view[: self.budget]
        self._sock.settimeout(wait)
        try:
            count = self._sock.recv_into(view)
        except TimeoutError:
            self.timed_out = True
            self.expired = at_deadline  # this wait ran to the deadline, not just the per-read timeout
            raise
        if self.budget is not None:
            self.budget -= count
        return count


class GateRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"tiergate/{__version__}"
    sys_version = ""
    timeout = READ_TIMEOUT  # replaced by the server's read_timeout in setup()
    wbufsize = -1  # buffer the answer: headers and body leave in one write, flushed once per request
    server: GateHTTPServer
    rfile: io.BufferedReader  # set in setup(): peek() waits for an idle keep-alive connection's next request

    def setup(self) -> None:
        super().setup()
        # Small answers on keep-alive connections otherwise wait for the client's delayed ACK (Nagle): ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _Reader(self.connection, self.server.read_timeout)
        self.rfile = io.BufferedReader(self._reader, _BODY_CHUNK)
        self._expect_continue = False
        self._responded = False
        self._drain_on_close = False

    def finish(self) -> None:
        super().finish()
        if self._drain_on_close:
            _linger(self.connection)

    def handle_one_request(self) -> None:
        reader = self._reader
        # The header budget counts from the first read: the wait for the first byte reads a buffer's worth at once.
        reader.deadline, reader.budget, reader.expired, reader.timed_out = None, MAX_HEADER_BYTES, False, False
        try:
            waiting = self.rfile.peek(1)  # an idle keep-alive connection waits here, up to the read timeout
        except OSError:  # timed out, reset
            self.close_connection = True
            return
        if not waiting:
            self.close_connection = True
            return
        reader.deadline = time.monotonic() + self.server.request_timeout
        self.command, self.requestline, self._expect_continue, self._responded = "", "", False, False
        try:
            super().handle_one_request()  # a timeout in the request line or headers closes the connection there
        except _HeaderTooLarge:  # in the request line (the stdlib answers it in the headers itself)
            self.send_error(431, f"request line and headers over {MAX_HEADER_BYTES} bytes")
        if self._responded and self.close_connection and reader.budget is not None and reader.budget <= 0:
            self._drain_on_close = True  # refused for its header block: more of it may be on the way
        if reader.timed_out and not self._responded:  # in the request line or headers: the stdlib just closes
            self.send_error(408, f"the request line and headers did not arrive in time (within "
                                 f"{self.server.request_timeout:g} s, and no more than {self.server.read_timeout:g} s "
                                 "between bytes)")
        if self._responded:
            try:
                self.wfile.flush()
            except OSError:
                self.close_connection = True

    def handle_expect_100(self) -> bool:
        """Say "100 Continue" only once the request is routed and authenticated (see :meth:`_read_body`)."""
        self._expect_continue = True
        return True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    # --- one request -------------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        started = time.thread_time()  # CPU time: waiting on the database or a slow client costs the deciders nothing
        self._public = self._writing = False
        self._body_read = False
        self._reader.budget = None  # the header block is parsed; a body is bounded by its route's limit
        try:
            response = self._respond(method)
        except ApiError as exc:
            response = exc.response()
        except LogHoleError as exc:  # fail closed until the log is restored: unavailable, not a bug
            response = Response.json(503, {"error": f"the log is unavailable: {exc}"}, {"Retry-After": "30"})
        except StoreIntegrityError as exc:
            response = Response.json(500, {"error": f"the log store failed an integrity check: {exc}"})
        except StoreError as exc:
            response = Response.json(503, {"error": f"the log is unavailable: {exc}"})
        except (InputError, TreeRangeError, VerificationError) as exc:
            response = Response.json(400, {"error": str(exc)})
        except ConfigurationBroken as exc:  # a trust store or policy changed into something that does not load
            response = Response.json(503, {"error": str(exc)}, {"Retry-After": "30"})
        except GateError as exc:
            response = Response.json(500, {"error": str(exc)})
        except Exception:  # noqa: BLE001 - never a traceback to the client; the operator sees it on stderr
            sys.stderr.write(f"gate serve: internal error on {method} {self.path[:200]}\n{traceback.format_exc()}")
            response = Response.json(500, {"error": "internal error in the gate service (details in its log)"})
        if not self._body_read and self._declared_length() != 0:
            self.close_connection = True  # an unread body would be parsed as the next request
            self._drain_on_close = True
        self._send(response, method)
        if self._writing:
            self.server.end_write()
        if self._public:  # what this public request cost, building and sending the answer
            spent = time.thread_time() - started
            self.server.read_limit.charge(self.client_address[0], spent)
            self.server.all_reads.charge("", spent)

    def _respond(self, method: str) -> Response:
        if self.headers.get("Transfer-Encoding") and self._content_length() is not None:
            raise ApiError(400, "both Transfer-Encoding and Content-Length; send one Content-Length")
        self._content_length()  # exactly one, and a number, whatever the method (no two readings of one request)
        url = urlsplit(self.path)
        route = route_for(method, url.path)
        client = self._authenticate() if route.auth else None
        if route.auth:
            self.server.begin_write()
            self._writing = True
        elif route.admit is None and not self.server.writes_quiet():
            client = self.client_address[0]
            if not (self.server.read_limit.admit(client) and self.server.all_reads.admit("")):
                # Answered after the Retry-After it states: a client that ignores it cannot make refusals its own
                # flood (a waiting thread costs no CPU; --max-client-connections bounds how many wait).
                time.sleep(1.0)
                error = ApiError(429, "too many public requests from this address (over its share of requests or "
                                      "serving time); retry shortly, read smaller pages, or cache what you read (full "
                                      "tiles under /tile/ never change)")
                error.headers["Retry-After"] = "1"
                raise error
            self._public = True
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        if route.admit is not None:
            route.admit(self.server.service, headers)  # e.g. the webhook: enabled, and the right secret
        body = self._read_body(self._body_limit(route)) if method == "POST" else b""
        self._reader.deadline = None  # the request is in; what follows is the service's time, not the client's
        query = parse_qs(url.query, keep_blank_values=True)
        return route.handler(self.server.service, Request(method, url.path, query, body, client, headers))

    def _authenticate(self) -> str:
        values = self.headers.get_all("Authorization") or []
        if len(values) > 1:  # which one counts differs between this server and a proxy in front: refuse both
            raise ApiError(400, f"{len(values)} Authorization headers; send exactly one")
        header = values[0] if values else ""
        scheme, _, token = header.partition(" ")
        name = self.server.service.tokens.check(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            error = ApiError(401, "missing or invalid bearer token (send Authorization: Bearer <token>)")
            error.headers["WWW-Authenticate"] = 'Bearer realm="tiergate"'
            raise error
        return name

    def _body_limit(self, route: Route) -> int:
        return self.server.max_body if route.max_body is None else min(route.max_body, self.server.max_body)

    def _content_length(self) -> int | None:
        """The declared body length; None when there is none; a 400 when it is not exactly one number."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        if len(values) > 1:
            raise ApiError(400, f"{len(values)} Content-Length headers; send exactly one")
        text = values[0].strip(" \t")
        if not _CONTENT_LENGTH.fullmatch(text):
            raise ApiError(400, f"Content-Length {values[0][:30]!r} is not a number")
        return int(text)

    def _declared_length(self) -> int | None:
        """The body length a request announced, for keep-alive; None when it cannot be told (close the connection)."""
        if self.headers.get("Transfer-Encoding"):
            return None
        try:
            length = self._content_length()
        except ApiError:
            return None
        return 0 if length is None else length

    def _read_body(self, limit: int) -> bytes:
        media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media != JSON_TYPE:
            raise ApiError(415, f"request body must be {JSON_TYPE}, not {media or 'unspecified'}")
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "send the body with a Content-Length (chunked transfer encoding is not accepted)")
        length = self._content_length()
        if length is None:
            raise ApiError(411, "a Content-Length header is required")
        if length > limit:
            raise ApiError(413, f"request body of {length} bytes is over the {limit}-byte limit of {self.path[:100]}")
        if self._expect_continue and length:
            self._expect_continue = False
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()
        data = bytearray()
        try:
            while len(data) < length:
                chunk = self.rfile.read1(min(_BODY_CHUNK, length - len(data)))
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            self.close_connection = True
            if self._reader.expired:
                raise ApiError(408, f"the request did not arrive within {self.server.request_timeout:g} s") from None
            raise ApiError(408, f"no part of the request body arrived for {self.server.read_timeout:g} s") from None
        if len(data) != length:
            self.close_connection = True
            raise ApiError(400, f"request body ended after {len(data)} of {length} bytes")
        self._body_read = True
        return bytes(data)

    def _send(self, response: Response, method: str) -> None:
        self._responded = True
        try:
            self.connection.settimeout(self.server.read_timeout)  # reads may have left it at a deadline's remainder
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(response.body)
        except OSError:  # the client went away or stopped reading (reset, broken pipe, timed out)
            self.close_connection = True

    # --- what BaseHTTPRequestHandler sends by itself (malformed request line, URI too long) ----------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        self.request_version = self.protocol_version  # a garbled request line still gets a status line and headers
        text = message or self.responses.get(code, ("error",))[0]
        if explain and code == 431:
            text = f"{text}: {explain}"
        self._send(Response.json(code, {"error": text}), getattr(self, "command", "GET") or "GET")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        """Quiet by default: a log line per request costs more than a decision on a busy gate."""

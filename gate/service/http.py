"""The HTTP server: stdlib ``ThreadingHTTPServer``, keep-alive, body limits, bearer tokens, JSON errors.

Every way a request can go wrong ends in a JSON ``{"error": ...}`` with a fitting status (400 malformed, 401 no or
bad token, 404/405 unknown endpoint or method, 411 no length, 413 too large, 415 not JSON, 503 log unavailable),
never a traceback on the wire. An unexpected exception is a 500 with a generic message; its traceback goes to the
server's stderr only.
"""

from __future__ import annotations

import socket
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gate import __version__
from gate.core.log.merkle import TreeRangeError
from gate.core.log.store import StoreError, StoreIntegrityError
from gate.errors import GateError, InputError, VerificationError
from gate.service.app import GateService
from gate.service.responses import JSON_TYPE, ApiError, Response
from gate.service.routes import Request, route_for

DEFAULT_MAX_BODY = 16 * 1024 * 1024


class GateHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the benchmark opens 64 connections at once; the default backlog of 5 drops them

    def __init__(self, address: tuple[str, int], service: GateService, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.service = service
        self.max_body = max_body
        super().__init__(address, GateRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is routine; anything else is printed as socketserver does."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class GateRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"release-gate/{__version__}"
    sys_version = ""
    timeout = 120  # seconds a connection may sit idle or trickle a request before its thread gives up
    wbufsize = -1  # buffer the answer: headers and body leave in one write, flushed once per request
    server: GateHTTPServer

    def setup(self) -> None:
        super().setup()
        # Small answers on keep-alive connections otherwise wait for the client's delayed ACK (Nagle): ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        self._body_read = False
        try:
            response = self._respond(method)
        except ApiError as exc:
            response = exc.response()
        except StoreIntegrityError as exc:
            response = Response.json(500, {"error": f"the log store failed an integrity check: {exc}"})
        except StoreError as exc:
            response = Response.json(503, {"error": f"the log is unavailable: {exc}"})
        except (InputError, TreeRangeError, VerificationError) as exc:
            response = Response.json(400, {"error": str(exc)})
        except GateError as exc:
            response = Response.json(500, {"error": str(exc)})
        except Exception:  # never a traceback to the client; the operator sees it on stderr
            sys.stderr.write(f"gate serve: internal error on {method} {self.path[:200]}\n{traceback.format_exc()}")
            response = Response.json(500, {"error": "internal error in the gate service (details in its log)"})
        if not self._body_read and self._declared_length() != 0:
            self.close_connection = True  # an unread body would be parsed as the next request
        self._send(response, method)

    def _respond(self, method: str) -> Response:
        url = urlsplit(self.path)
        route = route_for(method, url.path)
        client = self._authenticate() if route.auth else None
        body = self._read_body() if method == "POST" else b""
        query = parse_qs(url.query, keep_blank_values=True)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        return route.handler(self.server.service, Request(method, url.path, query, body, client, headers))

    def _authenticate(self) -> str:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        name = self.server.service.tokens.check(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            error = ApiError(401, "missing or invalid bearer token (send Authorization: Bearer <token>)")
            error.headers["WWW-Authenticate"] = 'Bearer realm="release-gate"'
            raise error
        return name

    def _declared_length(self) -> int | None:
        if self.headers.get("Transfer-Encoding"):
            return None
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        try:
            return int(text)
        except ValueError:
            return None

    def _read_body(self) -> bytes:
        media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media != JSON_TYPE:
            raise ApiError(415, f"request body must be {JSON_TYPE}, not {media or 'unspecified'}")
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "send the body with a Content-Length (chunked transfer encoding is not accepted)")
        text = self.headers.get("Content-Length")
        if text is None:
            raise ApiError(411, "a Content-Length header is required")
        if not text.strip().isdigit():
            raise ApiError(400, f"Content-Length {text[:30]!r} is not a number")
        length = int(text)
        if length > self.server.max_body:
            raise ApiError(413, f"request body of {length} bytes is over the {self.server.max_body}-byte limit")
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise ApiError(400, f"request body ended after {len(data)} of {length} bytes")
        self._body_read = True
        return data

    def _send(self, response: Response, method: str) -> None:
        try:
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
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # --- what BaseHTTPRequestHandler sends by itself (malformed request line, URI too long) ----------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        self.request_version = self.protocol_version  # a garbled request line still gets a status line and headers
        text = message or self.responses.get(code, ("error",))[0]
        self._send(Response.json(code, {"error": text}), getattr(self, "command", "GET") or "GET")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: a log line per request costs more than a decision on a busy gate."""

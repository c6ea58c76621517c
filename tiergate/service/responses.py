"""What a handler returns (:class:`Response`) or raises (:class:`ApiError`): status, body, content type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"


class ApiError(Exception):
    """A request the service refuses, with the HTTP status and the one-line reason sent as ``{"error": ...}``."""

    def __init__(self, status: int, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self) -> Response:
        return Response.json(self.status, {"error": self.message, **self.extra}, self.headers)


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, **extra)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # A lone surrogate quoted from a request would make a 500 of any answer; written as its escape it stays JSON.
        body = text.encode("utf-8", "backslashreplace") + b"\n"
        return cls(status, body, JSON_TYPE, dict(headers or {}))

"""RFC 3339 timestamps: one format everywhere (UTC, ``Z``, whole seconds unless given finer)."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(text: object) -> datetime:
    """Parse an RFC 3339 / ISO 8601 time; a time without an offset is refused (ambiguous)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an RFC 3339 time string, found {type(text).__name__}")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset (write it like 2026-01-31T12:00:00Z)")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past the last representable UTC time
        raise ValueError(f"time {text!r} is out of range in UTC") from None


def format_time(when: datetime) -> str:
    when = when.astimezone(timezone.utc)
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")

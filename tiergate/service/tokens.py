"""Bearer tokens for the service's write endpoints, kept as SHA-256 hashes and compared in constant time.

The tokens file never holds a token in clear (a leaked config must not leak credentials), so an entry that is not a
SHA-256 hex digest is refused at start-up rather than silently treated as a token. Two layouts are accepted::

    # one hash per line, optionally followed by a name        # or YAML
    3f7a...e1  ci-pipeline                                     tokens:
    sha256:9b2c...04  mlflow-plugin                              - name: ci-pipeline
                                                                   sha256: 3f7a...e1

``gate serve token-hash`` prints the hash of a token read from standard input.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from tiergate.core.files import parse_yaml, read_limited
from tiergate.errors import config_error

_HEX = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
HINT = "tokens are stored as SHA-256 hex digests: make one with `gate serve token-hash`"


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token's UTF-8 bytes (surrounding whitespace removed)."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenHash:
    name: str
    sha256: bytes


@dataclass(frozen=True)
class TokenSet:
    """The accepted token hashes and who each belongs to (the name is recorded, never the token)."""

    tokens: tuple[TokenHash, ...]
    source: str

    def check(self, token: str | None) -> str | None:
        """The name of the token's owner, or None. Every stored hash is compared, in constant time each."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for entry in self.tokens:
            if hmac.compare_digest(digest, entry.sha256) and found is None:
                found = entry.name
        return found

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TokenSet:
        raw = read_limited(path, "tokens file", 1024 * 1024)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise config_error(path, None, "not UTF-8 text") from None
        tokens = _yaml_tokens(path, text) if re.search(r"^tokens\s*:", text, re.MULTILINE) else _line_tokens(path, text)
        if not tokens:
            raise config_error(path, None, f"no token hashes found; {HINT}")
        return cls(tuple(tokens), str(path))


def _digest(path: Any, where: str | None, value: Any) -> bytes:
    match = _HEX.fullmatch(str(value).strip().lower()) if isinstance(value, str) else None
    if not match:
        raise config_error(path, where, f"not a SHA-256 hex digest; {HINT}")
    return bytes.fromhex(match.group(1))


def _line_tokens(path: Any, text: str) -> list[TokenHash]:
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        value, _, name = content.partition(" ")
        tokens.append(TokenHash(name.strip() or f"token-{number}", _digest(path, f"line {number}", value)))
    return tokens


def _yaml_tokens(path: Any, text: str) -> list[TokenHash]:
    data = parse_yaml(text, path)  # the gate's one YAML loader: duplicate keys, alias bombs, deep nesting refused
    items = data.get("tokens") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise config_error(path, "tokens", "must be a list of {name, sha256}")
    tokens = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) - {"name", "sha256"}:
            raise config_error(path, f"tokens[{i}]", "must be a mapping with name and sha256")
        name = item.get("name") or f"token-{i}"
        tokens.append(TokenHash(str(name), _digest(path, f"tokens[{i}].sha256", item.get("sha256"))))
    return tokens


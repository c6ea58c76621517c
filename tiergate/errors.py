"""Exceptions that say what failed, for users.

Every error the gate raises on purpose is a :class:`GateError`; its message is one line a release engineer can act
on. ``exit_code`` is what the CLI exits with: 1 for a deny or a failed verification, 2 for a usage or
configuration error.
"""

from __future__ import annotations


class GateError(Exception):
    """Base class of every error the gate reports to a user."""

    exit_code = 1


class ConfigError(GateError):
    """A configuration file (trust store, policy, key, gate config) is missing or wrong.

    The message names the file and, where there is one, the field.
    """

    exit_code = 2


class UsageError(GateError):
    """The command was called with arguments that cannot work."""

    exit_code = 2


class InputError(GateError):
    """Input from outside (a model directory, an eval log, an attestation) is malformed or too large."""

    exit_code = 1


class ModelError(InputError):
    """The model directory cannot be given an identity (symlink escaping it, special file, bad name, ...)."""


class VerificationError(GateError):
    """A signature, envelope or statement did not verify. The message is the one-line reason."""

    exit_code = 1


def config_error(path: object, field: str | None, problem: str) -> ConfigError:
    """Build a ConfigError that names the file and the field: ``trust.yaml: evaluators[2].keys[0].pem: ...``."""
    where = f"{path}: {field}" if field else f"{path}"
    return ConfigError(f"{where}: {problem}")


def extra_missing(extra: str, missing: str) -> ConfigError:
    """The error for a command whose optional dependencies (the package's ``extra``) are not installed: which extra,
    what is missing, and how to install it. It names the requirements themselves (from this installation's metadata),
    not ``tiergate[extra]``, so the advice holds however the package was installed (checkout, git URL, wheel)."""
    from importlib import metadata

    from tiergate import DISTRIBUTION

    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # running from a source tree
        requires = []
    wanted = [r.split(";")[0].strip() for r in requires if f'extra == "{extra}"' in r]
    how = ("pip install " + " ".join(f"'{r}'" for r in wanted) if wanted
           else f"pip install '.[{extra}]' from a checkout of {DISTRIBUTION}")
    return ConfigError(f"this needs the '{extra}' extra ({missing} is not installed): {how}")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A third-party exception's message as one line of at most ``limit`` characters, for a reason shown to a user.
    Where the message is empty (HTTP clients often keep theirs in the cause), the first cause with one is used."""
    text = " ".join(str(exc).split())
    cause = exc.__cause__
    while not text and cause is not None:
        text = " ".join(str(cause).split())
        cause = cause.__cause__
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."

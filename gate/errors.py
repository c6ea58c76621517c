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

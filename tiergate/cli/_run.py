"""Running a click command so that no traceback reaches a user and exit codes are the documented ones."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

import click

from tiergate.errors import GateError, extra_missing

#: Top-level modules that only an extra brings, and the extra that brings each.
EXTRAS: dict[str, str] = {
    "mlflow": "mlflow",
    "huggingface_hub": "hf",
    "hf_xet": "hf",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "sigstore": "sigstore",
    "securesystemslib": "signers",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra whose absence raised ``exc``, or None when the missing module belongs to no extra."""
    top = (exc.name or "").split(".")[0]
    return EXTRAS.get(top)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"gate: {message}", err=True)
    sys.exit(code)


def run_guarded(command: click.Command, argv: list[str]) -> Any:
    try:
        return command.main(args=argv, prog_name="gate", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        fail("aborted", 1)
    except click.ClickException as exc:  # usage errors: click's message, exit 2
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except GateError as exc:
        fail(str(exc), exc.exit_code)
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:
            fail_internal(exc)
        fail(str(extra_missing(extra, exc.name or extra)), 2)
    except KeyboardInterrupt:
        fail("interrupted; nothing was allowed", 1)
    except Exception as exc:  # noqa: BLE001 - fail closed: an unexpected error is a deny, reported without a traceback
        fail_internal(exc)


def fail_internal(exc: BaseException) -> NoReturn:
    """Report an unexpected error as a deny (exit 1), with the traceback only under GATE_DEBUG."""
    if os.environ.get("GATE_DEBUG"):
        traceback.print_exception(exc)
    fail(
        f"internal error ({type(exc).__name__}: {exc}); treated as a deny. "
        "Set GATE_DEBUG=1 to see the traceback and report it.",
        1,
    )

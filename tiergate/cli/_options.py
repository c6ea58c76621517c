"""Options and helpers shared by several commands (one definition each)."""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, overload
from collections.abc import Callable

import click

from tiergate.core.digestcache import DigestCache
from tiergate.core.manifest import Manifest, hash_model, scan_size
from tiergate.core.timeutil import parse_time, utcnow
from tiergate.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

#: Models smaller than this hash too fast for a progress bar to help.
PROGRESS_MIN_BYTES = 256 * 1024 * 1024

model_dir_argument = click.argument(
    "model_dir", type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path)
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _hashing_flag(name: str, help_text: str) -> Callable[[F], F]:
    """A flag about how the model is hashed: kept in the context's meta (``gate.<name>``) for
    :func:`hash_with_progress`, not passed to the command."""
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta["gate." + name.replace("-", "_")] = value
        return value

    return click.option("--" + name, is_flag=True, expose_value=False, callback=remember, help=help_text)


skip_git_option = _hashing_flag(
    "skip-git", "Leave a .git folder in MODEL_DIR out unread, for a folder published only by git or huggingface_hub "
                "(neither sends .git). By default it is refused: a folder published as it is would publish it.")
no_cache_option = _hashing_flag(
    "no-cache", "Read every file, not taking digests of unchanged files from the digest cache ($GATE_CACHE_DIR, "
                "else ~/.cache/tiergate; GATE_NO_CACHE=1 does the same).")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
# What every deciding command can print or append besides its table.
decision_json_option = click.option("--json", "as_json", is_flag=True,
                                    help="Print the decision as JSON (stable schema, replayable).")
markdown_summary_option = click.option("--markdown-summary", "markdown_path",
                                       type=click.Path(dir_okay=False, path_type=Path),
                                       help="Append a Markdown table (e.g. $GITHUB_STEP_SUMMARY).")
# The deciding commands read GATE_CONFIG and GATE_* themselves (tiergate.runtime.GateConfig): these options override.
policy_option = click.option(
    "--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Tier policy YAML (default: GATE_POLICY, or policy: in GATE_CONFIG, or the policy shipped with tiergate).",
)
trust_option = click.option(
    "--trust", "trust_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Trust store YAML (default: GATE_TRUST, or trust: in GATE_CONFIG).",
)
now_option = click.option(
    "--now", "now_text", metavar="TIME", envvar="GATE_NOW",
    help="Judge as of this RFC 3339 time instead of the clock (replaying a decision).",
)


@overload
def configured(value: Path | None, setting: str, needed_by: str) -> Path: ...


@overload
def configured(value: Path | None, setting: str, needed_by: None = None) -> Path | None: ...


def configured(value: Path | None, setting: str, needed_by: str | None = None) -> Path | None:
    """``value`` (an option), else the ``setting`` (``trust``, ``policy``, ``key``) of the one configuration
    (``GATE_*``, then ``GATE_CONFIG``). With ``needed_by``, raises UsageError when neither gives one."""
    if value is None:
        from tiergate.runtime.config import GateConfig

        value = getattr(GateConfig.from_env(), setting)
    if value is None and needed_by is not None:
        raise UsageError(f"{needed_by} needs --{setting} FILE (or GATE_{setting.upper()}, or {setting}: in "
                         "GATE_CONFIG)")
    return value


def resolve_now(now_text: str | None) -> datetime:
    if not now_text:
        return utcnow()
    try:
        return parse_time(now_text)
    except ValueError as exc:
        raise UsageError(f"--now: {exc}") from None


def passphrase_from_env(var: str | None, option: str = "--passphrase-env") -> bytes | None:
    """The secret in the environment variable ``var`` (named by ``option``); raises UsageError when it is unset."""
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise UsageError(f"{option} {var}: that environment variable is not set")
    return value.encode("utf-8")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def hash_with_progress(model_dir: Path, quiet: bool) -> Manifest:
    """Hash a model, with a progress bar on stderr when it is a terminal and the model is large (``--skip-git``
    of the running command is honoured)."""
    ctx = click.get_current_context(silent=True)
    skip_git = bool(ctx is not None and ctx.meta.get("gate.skip_git"))
    cache = None
    if not (ctx is not None and ctx.meta.get("gate.no_cache")) and os.environ.get("GATE_NO_CACHE", "") in ("", "0"):
        cache, problem = DigestCache.open()
        if problem is not None and not quiet:
            click.echo(f"note: {problem}", err=True)
    try:
        if quiet or not sys.stderr.isatty():
            return hash_model(model_dir, skip_git=skip_git, cache=cache)
        total = scan_size(model_dir, skip_git=skip_git)
        if total < PROGRESS_MIN_BYTES:
            return hash_model(model_dir, skip_git=skip_git, cache=cache)
        with _ProgressContext(total) as advance:
            return hash_model(model_dir, progress=advance, skip_git=skip_git, cache=cache)
    finally:
        if cache is not None:
            cache.close()


class _Counter:
    def __init__(self) -> None:
        self.done = 0
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.done += n


class _ProgressContext:
    """Workers only add to a counter; one thread draws the bar, so click's bar is never touched concurrently."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.counter = _Counter()
        self.stop = threading.Event()

    def __enter__(self) -> Callable[[int], None]:
        self.bar = click.progressbar(length=self.total, label="hashing", file=sys.stderr, show_eta=True)
        self.bar.__enter__()
        self.thread = threading.Thread(target=self._draw, daemon=True)
        self.thread.start()
        return self.counter

    def _draw(self) -> None:
        shown = 0
        while not self.stop.wait(0.2):
            done = self.counter.done
            self.bar.update(done - shown)
            shown = done
        self.bar.update(self.counter.done - shown)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.bar.__exit__(*exc)  # type: ignore[arg-type]

"""``gate hooks``: the git pre-push hook that gates pushes of weights, and its installer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gate.cli._options import now_option, resolve_now
from gate.errors import UsageError


@click.group("hooks")
def hooks_group() -> None:
    """Git hooks that check pushed weights against the release policy (any remote, Hugging Face Hub included)."""


@hooks_group.command("install")
@click.argument("repo", required=False, default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tier", help="Tier pushes must satisfy (sets git config release-gate.tier, or the --remote's own).")
@click.option("--remote", help="Set the tier for this remote only (remote.<name>.releaseGateTier).")
@click.option("--config", "gate_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gate config file the hook should use when GATE_CONFIG is not set (git config release-gate.config).")
@click.option("--force", is_flag=True, help="Replace an existing pre-push hook (kept as pre-push.before-release-gate).")
def install_command(repo: Path, tier: str | None, remote: str | None, gate_config: Path | None, force: bool) -> None:
    """Install the release-gate pre-push hook into REPO (default: the current repository).

    The hook runs git-lfs's pre-push itself after the check, so it replaces git-lfs's hook.
    """
    from gate.integrations.git.install import install_hook
    from gate.integrations.git.objects import GitRepo
    from gate.integrations.git.prepush import DEFAULT_TIER_KEY, TIER_KEY

    if remote and not tier:
        raise UsageError("--remote needs --tier")
    path = install_hook(repo, force=force)
    git = GitRepo(repo)
    if tier:
        from gate.core.policy import Policy
        from gate.runtime import GateConfig

        env = {**os.environ, **({"GATE_CONFIG": str(gate_config)} if gate_config else {})}
        from gate.core.targets import tier_named

        tier = tier_named(Policy.load(GateConfig.from_env(env).policy).tier_names, tier)  # the policy's own name
        key = TIER_KEY.format(remote=remote) if remote else DEFAULT_TIER_KEY
        git.git("config", key, tier)
        click.echo(f"gate: {key} = {tier}", err=True)
    if gate_config:
        git.git("config", "release-gate.config", str(gate_config.resolve()))
    click.echo(f"gate: installed {path}", err=True)


@hooks_group.command("pre-push")
@click.argument("remote")
@click.argument("url")
@click.option("--tier", help="Tier to check for (default: git config remote.<name>.releaseGateTier or release-gate.tier).")
@now_option
def prepush_command(remote: str, url: str, tier: str | None, now_text: str | None) -> None:
    """Run by git before a push (REMOTE URL as arguments, the refs on stdin). Exit 1 aborts the push."""
    from gate.core.render import decision_text
    from gate.integrations.git.objects import GitRepo
    from gate.integrations.git.prepush import (
        DEFAULT_TIER_KEY, TIER_KEY, chain_to_lfs, check_push, configured_tier, describe_check, lfs_available,
        parse_updates, uses_lfs, verify_lfs_objects)
    from gate.runtime import Gate, GateConfig

    stdin = sys.stdin.buffer.read()
    updates = parse_updates(stdin.decode("utf-8", "replace"))
    with GitRepo(".") as repo:
        if any(not u.is_delete for u in updates):
            chosen = tier or configured_tier(repo, remote)
            if not chosen:
                raise UsageError(
                    f"no release tier configured for remote '{remote}'; set one with "
                    f"`git config {TIER_KEY.format(remote=remote)} <tier>` (or `git config {DEFAULT_TIER_KEY} <tier>` "
                    "for every remote). The push was not sent.")
            if not os.environ.get("GATE_CONFIG") and repo.config("release-gate.config"):
                os.environ["GATE_CONFIG"] = str(repo.config("release-gate.config"))
            gate = Gate.load(GateConfig.from_env())
            from gate.core.targets import tier_named

            chosen = tier_named(gate.policy.tier_names, chosen)  # as the policy spells it, look-alikes refused
            now = resolve_now(now_text) if now_text else None
            checks = check_push(repo, remote, url, updates, chosen,
                                lambda t, m, a, c: gate.decide(t, m, a, c, now=now))
            for check in checks:
                click.echo(describe_check(check), err=True)
            if checks and not checks[-1].decision.allowed:
                denied = checks[-1].decision
                click.echo(decision_text(denied), err=True)
                click.echo(f"gate: push to {remote} blocked: {denied.summary()}", err=True)
                sys.exit(1)
        if lfs_available():
            verify_lfs_objects(repo, updates)  # git-lfs uploads the local objects without hashing them again
            sys.exit(chain_to_lfs(repo, remote, url, stdin))
        if uses_lfs(repo, updates):
            click.echo("gate: warning: this push tracks files with git-lfs, but git-lfs is not installed, so their "
                       "objects will not be uploaded", err=True)

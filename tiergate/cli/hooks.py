"""``gate hooks``: the git pre-push hook that gates pushes of weights, and its installer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tiergate.cli._options import now_option, resolve_now
from tiergate.errors import UsageError


@click.group("hooks")
def hooks_group() -> None:
    """Git hooks that check pushed weights against the release policy (any remote, Hugging Face Hub included)."""


@hooks_group.command("install")
@click.argument("repo", required=False, default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tier", help="Tier pushes must satisfy (sets git config tiergate.tier, or the --remote's own).")
@click.option("--remote", help="Set the tier for this remote only (remote.<name>.tiergateTier).")
@click.option("--config", "gate_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gate config file the hook should use when GATE_CONFIG is not set (git config tiergate.config).")
@click.option("--force", is_flag=True, help="Replace a hook already kept as pre-push.before-tiergate.")
def install_command(repo: Path, tier: str | None, remote: str | None, gate_config: Path | None, force: bool) -> None:
    """Install the tiergate pre-push hook into REPO (default: the current repository).

    It goes where git runs hooks from (core.hooksPath included). An existing pre-push hook is kept as
    pre-push.before-tiergate and run after the check; git-lfs's hook is replaced (the gate's runs git-lfs).
    """
    from tiergate.integrations.git.install import CHAINED, hooks_path, install_hook, is_husky, tracked_hook
    from tiergate.integrations.git.objects import GitRepo
    from tiergate.integrations.git.tiers import DEFAULT_TIER_KEY, TIER_KEY

    if remote and not tier:
        raise UsageError("--remote needs --tier")
    git = GitRepo(repo)
    if tier:
        from tiergate.core.policy import Policy
        from tiergate.runtime import GateConfig

        env = {**os.environ, **({"GATE_CONFIG": str(gate_config)} if gate_config else {})}
        from tiergate.core.targets import tier_named

        tier = tier_named(Policy.load(GateConfig.from_env(env).policy).tier_names, tier)  # the policy's own name
    tracked = tracked_hook(repo)
    path = install_hook(repo, force=force)
    where = hooks_path(git)
    if tracked is not None:
        click.echo(f"gate: warning: {tracked} is tracked by git; it changed in this clone only (the team's hook is "
                   f"kept as {CHAINED} and still runs): do not commit that change, since the hook names this "
                   "machine's interpreter", err=True)
    if where.setting:
        click.echo(f"gate: core.hooksPath = {where.setting}: installed where git runs hooks from", err=True)
    if is_husky(where):
        click.echo("gate: husky rewrites that folder on `npm install`: run `gate hooks install` again afterwards, or "
                   "put `gate hooks pre-push \"$@\"` first in .husky/pre-push (`gate hooks status` checks)", err=True)
    if path.with_name(CHAINED).exists():
        click.echo(f"gate: the hook that was there is kept as {path.with_name(CHAINED)} and runs after the check",
                   err=True)
    if tier:
        key = TIER_KEY.format(remote=remote) if remote else DEFAULT_TIER_KEY
        git.git("config", "--local", key, tier)
        click.echo(f"gate: {key} = {tier}", err=True)
    if gate_config:
        git.git("config", "--local", "tiergate.config", str(gate_config.resolve()))
    click.echo(f"gate: installed {path}", err=True)


@hooks_group.command("status")
@click.argument("repo", required=False, default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
def status_command(repo: Path) -> None:
    """Say whether git will run the tiergate pre-push hook in REPO, and at which tier each remote is checked.

    Exit 0 when it runs; 1 when it is missing, shadowed (core.hooksPath), rewritten, not executable or broken.
    """
    from tiergate.core.policy import Policy
    from tiergate.errors import GateError
    from tiergate.integrations.git.install import hook_status
    from tiergate.integrations.git.objects import GitRepo
    from tiergate.integrations.git.tiers import remote_push_urls, resolve_tier
    from tiergate.runtime import GateConfig

    status = hook_status(repo)
    for line in status.lines:
        click.echo(f"gate: {line}")
    git = GitRepo(repo)
    if not os.environ.get("GATE_CONFIG") and git.config("tiergate.config"):
        os.environ["GATE_CONFIG"] = str(git.config("tiergate.config"))
    try:
        policy = Policy.load(GateConfig.from_env().policy)
    except GateError as exc:  # the hook loads the same configuration, so it would refuse every push
        click.echo(f"gate: FAILS: the gate's configuration cannot be loaded ({exc}); every push is refused until "
                   "it is fixed")
        sys.exit(1)
    urls = remote_push_urls(git)
    for name, pushes in urls.items():
        for url in pushes:
            try:
                choice = resolve_tier(git, name, url, policy.tier_names, urls)
                click.echo(f"gate: push to {name} ({url}): tier '{choice.tier}' from {choice.source}")
            except GateError as exc:
                click.echo(f"gate: push to {name} ({url}): refused: {exc}")
    sys.exit(0 if status.runs else 1)


@hooks_group.command("pre-push")
@click.argument("remote")
@click.argument("url")
@click.option("--tier", help="Tier to check for (default: from git config, by the remote's name and the url).")
@click.option("--hook", "hook_path", hidden=True, help="The installed hook's path ($0), to run the hook it replaced.")
@now_option
def prepush_command(remote: str, url: str, tier: str | None, hook_path: str | None, now_text: str | None) -> None:
    """Run by git before a push (REMOTE URL as arguments, the refs on stdin). Exit 1 aborts the push."""
    from tiergate.core.render import decision_text
    from tiergate.core.targets import tier_named
    from tiergate.integrations.git.install import KEPT_HOOK_ENV, run_chained
    from tiergate.integrations.git.objects import GitRepo
    from tiergate.integrations.git.prepush import (chain_to_lfs, check_push, describe_checks, lfs_available,
                                               max_pushed_commits, parse_updates, uses_lfs, verify_lfs_objects)
    from tiergate.integrations.git.tiers import TierChoice, resolve_tier
    from tiergate.runtime import Gate, GateConfig

    if os.environ.get(KEPT_HOOK_ENV):  # run again by the hook it chained (lefthook running its .old copy of ours):
        return  # the outer run has checked this push and will run git-lfs; checking again would loop
    stdin = sys.stdin.buffer.read()
    updates = parse_updates(stdin.decode("utf-8", "replace"))
    with GitRepo(".") as repo:
        if any(not u.is_delete for u in updates):
            if not os.environ.get("GATE_CONFIG") and repo.config("tiergate.config"):
                os.environ["GATE_CONFIG"] = str(repo.config("tiergate.config"))
            gate = Gate.load(GateConfig.from_env())
            choice = (TierChoice(tier_named(gate.policy.tier_names, tier), "--tier") if tier else
                      resolve_tier(repo, remote, url, gate.policy.tier_names))
            click.echo(f"tiergate: push to {url} checked at tier '{choice.tier}' (from {choice.source})", err=True)
            now = resolve_now(now_text) if now_text else None
            checks = check_push(repo, remote, url, updates, choice.tier,
                                lambda t, m, a, c: gate.decide(t, m, a, c, now=now), max_pushed_commits())
            for line in describe_checks(checks):
                click.echo(line, err=True)
            if checks and not checks[-1].decision.allowed:
                denied = checks[-1].decision
                click.echo(decision_text(denied), err=True)
                click.echo(f"gate: push to {remote} blocked: {denied.summary()}", err=True)
                sys.exit(1)
        if lfs_available():
            verify_lfs_objects(repo, updates)  # git-lfs uploads the local objects without hashing them again
        if hook_path:
            code = run_chained(hook_path, [remote, url], stdin, repo.path)
            if code:
                click.echo(f"gate: the pre-push hook the tiergate hook runs after its check refused the push "
                           f"(exit {code})", err=True)
                sys.exit(code)
        if lfs_available():
            sys.exit(chain_to_lfs(repo, remote, url, stdin))
        if uses_lfs(repo, updates):
            click.echo("gate: warning: this push tracks files with git-lfs, but git-lfs is not installed, so their "
                       "objects will not be uploaded", err=True)

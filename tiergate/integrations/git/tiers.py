"""Which tier a push must satisfy: by the remote's name *and* by where the push goes (its url).

git runs ``pre-push <name> <url>``; ``git push <url>`` passes the url as the name too. The tier comes from git config:

- ``remote.<name>.tiergateTier`` for the remote named, and for every configured remote whose push url is the url
  pushed to (the same destination under another name, or typed out);
- ``tiergate.<url-prefix>.tier`` rules, for every push url that starts with the prefix (credentials, the
  scheme's and host's case and a trailing ``/`` or ``.git`` do not count), e.g.
  ``git config --global tiergate.https://huggingface.co/.tier open``;
- when neither names the push: ``tiergate.tier``, the repository's default.

When several rules match, the highest tier wins. A ``tiergate.tier`` or ``remote.<name>.tiergateTier`` from the
global or system config is refused rather than applied: it would set the tier of every repository on the machine
without naming any destination (a url rule names one, so it may live anywhere). Every tier applied is reported with
where it came from.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from collections.abc import Sequence

from tiergate.core.targets import tier_named
from tiergate.errors import ConfigError, UsageError
from tiergate.integrations.git.objects import GitRepo

TIER_KEY = "remote.{remote}.tiergateTier"
DEFAULT_TIER_KEY = "tiergate.tier"
URL_TIER_KEY = "tiergate.{prefix}.tier"
#: Config scopes that belong to this repository (or to this one command, as ``git -c`` or GIT_CONFIG_* do).
REPOSITORY_SCOPES = ("local", "worktree", "command")
_KEYS = re.compile(r"^(tiergate\..*tier|remote\..*\.tiergatetier)$")
_SCP = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.*)$")  # git@host:org/repo (scp-like ssh)


@dataclass(frozen=True)
class ConfigValue:
    key: str  # as git prints it: section and variable lower case, subsection as written
    value: str
    scope: str  # system | global | local | worktree | command


@dataclass(frozen=True)
class TierChoice:
    """The tier a push is checked at, and the config that chose it (said to the user on every push)."""

    tier: str
    source: str


def tier_config(repo: GitRepo) -> list[ConfigValue]:
    """Every tier setting visible to ``repo``, in git's order (a later value of the same key overrides)."""
    out = subprocess.run(["git", "config", "--show-scope", "-z", "--get-regexp", _KEYS.pattern], cwd=repo.path,
                         capture_output=True, check=False)
    if out.returncode not in (0, 1):  # 1: no such key
        raise ConfigError(f"git config: {out.stderr.decode(errors='replace').strip()}")
    fields = out.stdout.split(b"\x00")
    values = []
    for scope, entry in zip(fields[0::2], fields[1::2], strict=False):
        key, _, value = entry.decode("utf-8", "replace").partition("\n")
        values.append(ConfigValue(key, value.strip(), scope.decode()))
    return values


def normalize_url(url: str, base: str | os.PathLike[str] = ".") -> str:
    """A push url as a comparable destination: ``host/path`` (credentials, scheme, port, case of the host, a trailing
    ``/`` or ``.git`` dropped) or, for a local repository, its real absolute path (relative to ``base``, the top of
    the work tree, where git resolves it)."""
    text = url.strip()
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(/.*)?$", text)
    if match and match.group(1).lower() != "file":
        host = match.group(2).rpartition("@")[2].split(":")[0].lower()
        return f"{host}/{_trim(match.group(3) or '')}"
    scp = _SCP.match(text)
    if scp and not match and "/" not in scp.group(1) and len(scp.group(1)) > 1:  # "C:" is a drive, not a host
        return f"{scp.group(1).lower()}/{_trim(scp.group(2))}"
    path = text[len("file://"):] if text.lower().startswith("file://") else text
    return os.path.realpath(os.path.join(base, path)).rstrip("/").removesuffix(".git")


def _trim(path: str) -> str:
    return path.strip("/").removesuffix(".git").rstrip("/")


def _prefix_matches(prefix: str, url: str, base: str | os.PathLike[str]) -> bool:
    want, have = normalize_url(prefix, base), normalize_url(url, base)
    return have == want or have.startswith(want.rstrip("/") + "/")


def remote_push_urls(repo: GitRepo) -> dict[str, list[str]]:
    """Each configured remote's push urls, as git would push to them (pushurl, insteadOf rewrites applied)."""
    urls: dict[str, list[str]] = {}
    for name in repo.git("remote").split():
        urls[name] = repo.git("remote", "get-url", "--push", "--all", name).split("\n")
        urls[name] = [u for u in urls[name] if u.strip()]
    return urls


def resolve_tier(repo: GitRepo, remote: str, url: str, tier_names: tuple[str, ...],
                 urls: dict[str, list[str]] | None = None) -> TierChoice:
    """The tier a push to ``url`` (through ``remote``, a remote's name or the url again) must satisfy.

    ``tier_names`` are the policy's tiers, lowest first; a configured name is read as
    :func:`tiergate.core.targets.tier_named` reads it. Raises UsageError when nothing applies (with the commands that
    configure a tier), when the only setting that would apply is a global one, or for a tier the policy does not have.
    """
    config = tier_config(repo)
    urls = remote_push_urls(repo) if urls is None else urls
    base = repo.path
    latest: dict[str, ConfigValue] = {}
    for item in config:
        latest[item.key] = item
    found: list[tuple[str, str]] = []  # (tier, source)
    refused: list[ConfigValue] = []

    def remote_rule(name: str, why: str) -> None:
        item = latest.get(f"remote.{name}.tiergatetier")
        if item is None:
            return
        if item.scope not in REPOSITORY_SCOPES:
            refused.append(item)
            return
        found.append((item.value, f"{TIER_KEY.format(remote=name)}{why}"))

    if remote in urls:
        remote_rule(remote, "")
    target = normalize_url(url, base)
    for name, pushes in urls.items():
        if name != remote and any(normalize_url(u, base) == target for u in pushes):
            remote_rule(name, f": {url} is where remote '{name}' pushes")
    for key, item in latest.items():
        if key.startswith("tiergate.") and key.endswith(".tier") and key != DEFAULT_TIER_KEY:
            prefix = key[len("tiergate."):-len(".tier")]
            if _prefix_matches(prefix, url, base):
                found.append((item.value, f"{key} ({item.scope} config)"))
    if not found:
        default = latest.get(DEFAULT_TIER_KEY)
        if default is not None and default.scope in REPOSITORY_SCOPES:
            found.append((default.value, (f"{DEFAULT_TIER_KEY}, this repository's default"
                                          f"{' (set on the command line)' if default.scope == 'command' else ''}")))
        elif default is not None:
            refused.append(default)
    if not found:
        raise UsageError(_nothing_applies(remote, url, refused))
    named: list[tuple[str, str]] = []
    for tier, source in found:
        try:
            named.append((tier_named(tier_names, tier), source))
        except ConfigError as exc:
            raise UsageError(f"{source} = {tier}: {exc}") from None
    tier, source = max(named, key=lambda item: tier_names.index(item[0]))
    others = sorted({s for t, s in named if s != source})
    return TierChoice(tier, source + (f"; also matched: {', '.join(others)}" if others else ""))


def _nothing_applies(remote: str, url: str, refused: Sequence[ConfigValue]) -> str:
    named = remote if remote != url else None
    fix = (f"`git config {TIER_KEY.format(remote=named)} <tier>`" if named else
           f"`git config {URL_TIER_KEY.format(prefix=url)} <tier>`")
    why = ""
    if refused:
        found = "; ".join(f"{item.key} = {item.value} is in the {item.scope} config" for item in refused)
        why = (f" ({found}: that would set the tier of every repository without naming where the push goes, so it "
               "is not applied)")
    return (f"no release tier configured for a push to {url}{why}; set one with {fix}, or "
            f"`git config {DEFAULT_TIER_KEY} <tier>` for every remote of this repository. The push was not sent.")

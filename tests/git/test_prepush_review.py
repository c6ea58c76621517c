"""Issue 11, finding 7 and "History is the unit" for pushes: the tier by url, global settings, core.hooksPath and
chained hooks, submodules, every pushed commit decided. Real git (and git-lfs where needed) against bare remotes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from content_samples import safetensors_bytes
from support import World, write_model
from test_prepush_hook import attest, commit_all, env, git, make_repo, push, remote, remote_head  # noqa: F401


def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(path)], check=True)
    return path


def gate_cmd(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tiergate", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env})


# --- the tier: by url as well as by name; no global tier applied blindly ----------------------------------------


def test_urls_compare_as_destinations() -> None:
    from tiergate.integrations.git.tiers import normalize_url

    same = ["https://user:token@HuggingFace.co/org/model.git/", "https://huggingface.co/org/model",
            "ssh://git@huggingface.co:22/org/model.git", "git@huggingface.co:org/model"]
    assert {normalize_url(u) for u in same} == {"huggingface.co/org/model"}
    assert normalize_url("https://huggingface.co/org/model2") != normalize_url(same[0])
    assert normalize_url("file:///srv/repos/x.git") == normalize_url("/srv/repos/x") == "/srv/repos/x"
    assert normalize_url("../x.git", "/srv/repos/work") == "/srv/repos/x"


def test_a_push_to_a_url_gets_the_tier_of_the_remote_that_pushes_there(tmp_path: Path, remote: Path,
                                                                       env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    hub = bare(tmp_path / "hub.git")
    git(work, "remote", "add", "hub", str(hub))
    git(work, "config", "remote.hub.tiergateTier", "open")
    git(work, "config", "tiergate.tier", "internal")
    write_model(work)
    commit_all(work, "unattested")

    for url in (str(hub), f"file://{hub}", str(hub)[:-len(".git")]):  # typed out, however spelled
        result = push(work, env, url, "main")
        assert result.returncode != 0, url
        assert "at tier 'open' (from remote.hub.tiergateTier" in result.stderr
        assert remote_head(hub) is None
    internal = push(work, env, "origin", "main")  # the repository's default, and said so
    assert internal.returncode == 0, internal.stderr
    assert "at tier 'internal' (from tiergate.tier, this repository's default)" in internal.stderr


def test_url_rules_name_a_destination_and_the_highest_matching_tier_wins(tmp_path: Path, remote: Path,
                                                                         env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    public = tmp_path / "public"
    public.mkdir()
    git(work, "config", "--global", f"tiergate.{public}/.tier", "open", env=env)  # global: fine, it names where
    git(work, "config", "remote.origin.tiergateTier", "internal")
    write_model(work)
    commit_all(work, "unattested")
    release = bare(public / "release.git")

    anywhere_public = push(work, env, str(release), "main")
    assert anywhere_public.returncode != 0
    assert f"tier 'open' (from tiergate.{public}/.tier (global config))" in anywhere_public.stderr

    git(work, "remote", "set-url", "--push", "origin", str(release))  # origin now pushes somewhere public
    renamed = push(work, env, "origin", "main")
    assert renamed.returncode != 0 and "at tier 'open'" in renamed.stderr
    assert "also matched: remote.origin.tiergateTier" in renamed.stderr
    assert remote_head(release) is None


def test_a_global_default_tier_is_refused_not_applied(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "--unset", "tiergate.tier")
    git(work, "config", "--global", "tiergate.tier", "internal", env=env)  # would wave through every repository
    write_model(work)
    commit_all(work, "unattested")

    result = push(work, env)

    assert result.returncode != 0
    assert "tiergate.tier = internal is in the global config" in result.stderr
    assert "git config remote.origin.tiergateTier <tier>" in result.stderr
    assert remote_head(remote) is None
    git(work, "config", "--global", "remote.origin.tiergateTier", "internal", env=env)  # as blind: every repo's origin
    assert "remote.origin.tiergatetier = internal is in the global config" in push(work, env).stderr
    assert remote_head(remote) is None
    git(work, "config", "tiergate.tier", "internal")  # this repository's own: applied
    assert push(work, env).returncode == 0


# --- the hook runs where git looks, keeps the hook it replaced, and says when it will not run -------------------


HUSKY_STUB = '#!/usr/bin/env sh\n. "$(dirname "$0")/h"\n'
HUSKY_H = ('#!/usr/bin/env sh\nn=$(basename "$0")\ns=$(dirname "$(dirname "$0")")/$n\n[ ! -f "$s" ] && exit 0\n'
           'sh -e "$s" "$@"\n')  # husky 9's runner, trimmed: it finds .husky/<hook> by the name it was called as


def test_a_hooks_path_set_after_install_is_reported_and_install_chains_it(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    assert gate_cmd(env, "hooks", "status", str(work)).returncode == 0
    husky = tmp_path / ".husky"  # outside the work tree, so that the attested folder is the committed one
    (husky / "_").mkdir(parents=True)
    (husky / "_" / "h").write_text(HUSKY_H)
    (husky / "_" / "pre-push").write_text(HUSKY_STUB)
    (husky / "_" / "pre-push").chmod(0o755)
    log = tmp_path / "husky.log"
    (husky / "pre-push").write_text(f'echo "husky $1" >> {log}\ncat >> {log}\n')
    git(work, "config", "core.hooksPath", str(husky / "_"))  # `npx husky init`: the gate's hook no longer runs
    write_model(work)
    commit_all(work, "unattested")

    status = gate_cmd(env, "hooks", "status", str(work))
    assert status.returncode == 1
    assert "NOT RUN" in status.stdout and "core.hooksPath" in status.stdout and "husky" in status.stdout

    installed = gate_cmd(env, "hooks", "install", str(work))
    assert installed.returncode == 0, installed.stderr
    assert (husky / "_" / "pre-push.before-tiergate").read_text() == HUSKY_STUB
    assert gate_cmd(env, "hooks", "status", str(work)).returncode == 0

    denied = push(work, env)
    assert denied.returncode != 0 and "DENIED" in denied.stderr
    assert not log.exists()  # the kept hook runs after the check, never before it
    attest(world, work, "open")
    head = commit_all(work, "evidence")
    allowed = push(work, env)
    assert allowed.returncode == 0, allowed.stderr
    assert remote_head(remote) == head
    assert log.read_text().splitlines() == ["husky origin", f"refs/heads/main {head} refs/heads/main {'0' * 40}"]

    (husky / "_" / "pre-push").write_text(HUSKY_STUB)  # `npm install`: husky rewrites its stubs ...
    assert gate_cmd(env, "hooks", "status", str(work)).returncode == 1
    (husky / "pre-push").write_text(f'{sys.executable} -m tiergate hooks pre-push "$@"\n')  # ... so wire it by hand
    wired = gate_cmd(env, "hooks", "status", str(work))
    assert wired.returncode == 0 and "wired by hand" in wired.stdout, wired.stdout


def test_a_kept_hook_that_fails_stops_the_push(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    hooks = work / ".git" / "hooks"
    (hooks / "pre-push.before-tiergate").write_text("#!/bin/sh\necho lint failed >&2\nexit 4\n")
    (hooks / "pre-push.before-tiergate").chmod(0o755)
    git(work, "config", "tiergate.tier", "internal")
    write_model(work)
    commit_all(work, "model")

    result = push(work, env)

    assert result.returncode != 0 and "lint failed" in result.stderr and "(exit 4)" in result.stderr
    assert remote_head(remote) is None


def test_status_finds_a_hook_git_will_skip_or_cannot_run(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    hook = work / ".git" / "hooks" / "pre-push"
    text = hook.read_text()
    hook.chmod(0o644)
    status = gate_cmd(env, "hooks", "status", str(work))
    assert status.returncode == 1 and "not executable" in status.stdout
    hook.chmod(0o755)
    hook.write_text(text.replace(sys.executable, str(tmp_path / "gone" / "python")))
    status = gate_cmd(env, "hooks", "status", str(work))
    assert status.returncode == 1 and "FAILS" in status.stdout and "gone/python" in status.stdout
    hook.write_text("#!/bin/sh\nexit 0\n")  # rewritten by another tool
    status = gate_cmd(env, "hooks", "status", str(work))
    assert status.returncode == 1 and "is another hook" in status.stdout
    assert "tier 'open' from tiergate.tier" in status.stdout  # and each remote's tier, with its source


def test_status_says_a_broken_configuration_refuses_every_push(tmp_path: Path, remote: Path,
                                                              env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    broken = {**env, "GATE_CONFIG": str(tmp_path / "missing.yaml")}
    status = gate_cmd(broken, "hooks", "status", str(work))
    assert status.returncode == 1 and "FAILS" in status.stdout and "missing.yaml" in status.stdout, status.stdout
    write_model(work)
    commit_all(work, "weights")
    refused = push(work, broken)  # what status said: the hook loads the same configuration and refuses
    assert refused.returncode != 0 and remote_head(remote) is None


def test_install_refuses_a_global_hooks_path(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "--global", "core.hooksPath", str(tmp_path / "shared-hooks"), env=env)
    result = gate_cmd(env, "hooks", "install", str(work))
    assert result.returncode == 2 and "comes from the global config" in result.stderr
    assert not (tmp_path / "shared-hooks" / "pre-push").exists()
    assert gate_cmd(env, "hooks", "status", str(work)).returncode == 1  # .git/hooks is shadowed


# --- submodules -----------------------------------------------------------------------------------------------


def test_a_submodule_under_github_is_refused_before_recurse_submodules_pushes_it(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    sub_remote = bare(tmp_path / "sub.git")
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    git(seed, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "seed")
    git(seed, "push", "-q", str(sub_remote), "main")
    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work)
    file_ok = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.file.allow", "GIT_CONFIG_VALUE_0": "always"}
    git(work, "submodule", "add", "-q", str(sub_remote), ".github/vendor", env={**env, **file_ok})
    attest(world, work, "open")  # .gitmodules included: the tip's identity is attested
    sub = work / ".github" / "vendor"
    write_model(sub, {"w.safetensors": os.urandom(4096)})  # weights, in another repository
    git(sub, "-c", "user.name=a", "-c", "user.email=a@b", "add", "-A")
    git(sub, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "weights")
    head = commit_all(work, "attested model, and a submodule")

    result = push(work, {**env, **file_ok}, "--recurse-submodules=on-demand", "origin", "main")

    assert result.returncode != 0
    assert f"commit {head[:12]}: .github/vendor is a submodule" in result.stderr
    assert remote_head(remote) is None
    assert git(seed, "ls-remote", str(sub_remote), "main").stdout.split()[0] == \
        git(seed, "rev-parse", "main").stdout.strip()  # the submodule's weights were not pushed either


# --- history is the unit -------------------------------------------------------------------------------------


def test_every_pushed_commit_is_decided_not_only_those_with_new_content(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    unsafe = safetensors_bytes({"w": ("U8", [4096], os.urandom(4096))})
    write_model(work)
    (work / "model.safetensors").write_bytes(unsafe)
    first = commit_all(work, "the unsafe model loads by default")
    (work / "old").mkdir()
    (work / "model.safetensors").rename(work / "old" / "model.safetensors")
    write_model(work)  # a safe model in its place; the tip holds every byte of the first commit, arranged otherwise
    attest(world, work, "open")
    commit_all(work, "release")

    result = push(work, env)

    assert result.returncode != 0
    assert (f"{first[:12]} (history: config.json, model.safetensors, tokenizer.json: a model state no pushed tip "
            "has)") in result.stderr
    assert remote_head(remote) is None


def test_weights_then_their_evidence_is_one_decision_and_evidence_counts_where_it_names_the_model(
        tmp_path: Path, remote: Path, env: dict[str, str], world: World) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    write_model(work)
    commit_all(work, "weights")
    attest(world, work, "open")
    (work / ".attestations" / "eval-0.json").rename(work / ".attestations" / "v1-0.json")
    (work / ".attestations" / "eval-1.json").rename(work / ".attestations" / "v1-1.json")
    commit_all(work, "their evidence")
    (work / "config.json").write_bytes(b'{"hidden_size": 32}')
    attest(world, work, "open")  # v2's evidence; v1's stays in the tree
    head = commit_all(work, "v2 and its evidence")

    result = push(work, env)

    assert result.returncode == 0, result.stderr
    assert remote_head(remote) == head
    assert result.stderr.count(": allowed") == 2  # v2 (the tip) and v1 (its first commit); the evidence commit: same


def test_a_push_of_more_commits_than_the_bound_is_refused_not_checked_in_part(
        tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "tiergate.tier", "internal")
    for n in range(3):
        write_model(work, {"config.json": f'{{"n": {n}}}'.encode()})
        commit_all(work, f"c{n}")

    result = push(work, {**env, "GATE_GIT_MAX_COMMITS": "2"})

    assert result.returncode != 0 and "it sends 3 commits" in result.stderr and "GATE_GIT_MAX_COMMITS" in result.stderr
    assert remote_head(remote) is None
    assert push(work, env).returncode == 0


def test_many_allowed_history_decisions_are_counted_not_listed(tmp_path: Path, remote: Path,
                                                               env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "tiergate.tier", "internal")
    for n in range(8):
        write_model(work, {"config.json": f'{{"n": {n}}}'.encode()})
        commit_all(work, f"c{n}")

    result = push(work, env)

    assert result.returncode == 0, result.stderr
    assert "(pushed tree) at tier 'internal': allowed" in result.stderr
    assert "7 other model states in the pushed history at tier 'internal': allowed" in result.stderr
    assert "(history:" not in result.stderr


def test_a_ref_to_a_blob_or_a_tree_is_refused(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    git(work, "config", "tiergate.tier", "internal")  # even where anything goes, a model has to be a commit
    write_model(work)
    commit_all(work, "model")
    payload = tmp_path / "payload.safetensors"
    payload.write_bytes(os.urandom(4096))
    blob = git(work, "hash-object", "-w", str(payload)).stdout.strip()
    git(work, "tag", "weights", blob)  # served by the remote as refs/tags/weights, in no commit
    git(work, "tag", "-a", "-m", "annotated", "weights-annotated", blob)
    git(work, "tag", "tree", "HEAD^{tree}")

    for tag, kind in (("weights", "blob"), ("weights-annotated", "blob"), ("tree", "tree")):
        result = push(work, env, "origin", tag)
        assert result.returncode != 0, tag
        assert f"refs/tags/{tag} names a {kind}" in result.stderr and "Traceback" not in result.stderr
        assert remote_head(remote, f"refs/tags/{tag}") is None
    assert push(work, env, "origin", "main").returncode == 0


def test_a_kept_hook_that_runs_a_copy_of_the_gate_hook_does_not_loop(tmp_path: Path, remote: Path,
                                                                      env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    hooks = work / ".git" / "hooks"
    (hooks / "pre-push").rename(hooks / "pre-push.old")  # what lefthook does to a hook it finds ...
    (hooks / "pre-push").write_text('#!/bin/sh\n"$(dirname "$0")/pre-push.old" "$@"\n')  # ... and then runs it
    (hooks / "pre-push").chmod(0o755)
    assert "moved aside" in gate_cmd(env, "hooks", "status", str(work)).stdout
    assert gate_cmd(env, "hooks", "install", str(work)).returncode == 0
    git(work, "config", "tiergate.tier", "internal")
    write_model(work)
    head = commit_all(work, "model")

    result = subprocess.run(["git", "push", "origin", "main"], cwd=work, capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("(pushed tree) at tier 'internal': allowed") == 1  # checked once, no loop
    assert remote_head(remote) == head


def test_install_warns_when_the_hook_git_runs_is_a_tracked_file(tmp_path: Path, remote: Path,
                                                                env: dict[str, str]) -> None:
    work = make_repo(tmp_path, remote, env, lfs=False)
    team = work / ".githooks"
    team.mkdir()
    (team / "pre-push").write_text("#!/bin/sh\nexit 0\n")
    (team / "pre-push").chmod(0o755)
    commit_all(work, "the team's hooks")
    git(work, "config", "core.hooksPath", ".githooks")

    result = gate_cmd(env, "hooks", "install", str(work))

    assert result.returncode == 0, result.stderr
    assert "pre-push is tracked by git" in result.stderr and "do not commit that change" in result.stderr
    assert (team / "pre-push.before-tiergate").read_text() == "#!/bin/sh\nexit 0\n"
    assert gate_cmd(env, "hooks", "status", str(work)).returncode == 0

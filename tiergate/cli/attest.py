"""``gate attest``: an evaluator signs what an evaluation found about exact weights."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import click

from tiergate.cli._options import (hash_with_progress, model_dir_argument, no_cache_option, passphrase_from_env,
                                   policy_option, quiet_option, resolve_now, skip_git_option)
from tiergate.core.attestation import RISK_DOMAINS, Evaluation, EvaluatorRef, EvidenceRef
from tiergate.core.benchmarks import benchmark_of_task
from tiergate.core.keys import PrivateKey, PublicKey, SigningKey
from tiergate.core.manifest import ATTESTATION_DIR
from tiergate.core.policy import Policy
from tiergate.core.signing import evaluation_statement, sign_statement
from tiergate.core.timeutil import parse_time
from tiergate.errors import InputError, UsageError

MAX_EVIDENCE_BYTES = 8 * 1024**3


def _pairs(values: Sequence[str], option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for text in values:
        name, sep, raw = text.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} {text!r}: write NAME=VALUE, e.g. {option} accuracy=0.27")
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"{option} {text!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise UsageError(f"{option} {text!r}: the value must be a finite number")
        out[name.strip()] = value
    return out


def _name_at(text: str | None) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    name, _, version = text.partition("@")
    return name, version or None


def _file_sha256(path: Path) -> str:
    if path.stat().st_size > MAX_EVIDENCE_BYTES:
        raise InputError(f"{path}: larger than {MAX_EVIDENCE_BYTES} bytes; sign a smaller evaluation log")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _from_log(path: Path, fmt: str, task: str | None) -> tuple[Evaluation, EvidenceRef]:
    from tiergate.core.evidence import read_eval_log

    runs = read_eval_log(path, fmt)
    if task is not None:
        runs = [r for r in runs if r.task == task or benchmark_of_task(r.task) == task]
        if not runs:
            raise UsageError(f"--task {task}: not in {path}")
    if len(runs) != 1:
        names = ", ".join(r.task for r in runs)
        raise UsageError(f"{path} holds several tasks ({names}); choose one with --task")
    run = runs[0]
    evaluation = Evaluation(
        name=run.task,
        benchmark=benchmark_of_task(run.task),
        risk_domain=None,
        metrics=dict(run.metrics),
        sample_size=run.sample_size,
        stderr=dict(run.stderr),
        harness=run.harness_name,
        harness_version=run.harness_version,
        dataset=run.dataset_name,
        dataset_revision=run.dataset_revision,
        evaluated_at=run.evaluated_at,
    )
    return evaluation, EvidenceRef(sha256=run.log_sha256, name=run.log_name, format=run.format)


def _risk_domain(benchmark: str, declared: str | None, policy: Policy) -> str:
    """The risk domain ``benchmark`` measures, per the policy's catalogue. Raises UsageError when the catalogue does
    not list it (the attestation could meet no requirement) or ``declared`` says otherwise (the gate would reject
    it)."""
    measured = policy.benchmarks.domain_of(benchmark)
    if measured is None:
        raise UsageError(f"benchmark {benchmark!r} is not in the benchmark catalogue of {policy.uri}, so it measures "
                         "no risk domain and would meet no requirement; check its name, or add it to the policy's "
                         "'benchmarks' and pass --policy")
    if declared is not None and declared != measured:
        raise UsageError(f"--risk-domain {declared}: benchmark {benchmark!r} measures risk domain {measured} "
                         f"({policy.uri}); the gate takes the risk domain from the benchmark and would reject this "
                         "attestation")
    return measured


def _manual(
    name: str | None, benchmark: str | None, metrics: dict[str, float], stderr: dict[str, float],
    sample_size: int | None, harness: str | None, dataset: str | None, evaluated_at: str | None,
) -> Evaluation:
    if not name:
        raise UsageError("say which evaluation this is with --eval NAME "
                         "(or read it from a log with --from-inspect / --from-lm-eval)")
    if not metrics:
        raise UsageError("give at least one --metric NAME=VALUE (or read them from a log)")
    harness_name, harness_version = _name_at(harness)
    dataset_name, dataset_revision = _name_at(dataset)
    try:
        when = parse_time(evaluated_at) if evaluated_at else None
    except ValueError as exc:
        raise UsageError(f"--evaluated-at: {exc}") from None
    return Evaluation(
        name=name, benchmark=benchmark or name, risk_domain=None, metrics=metrics, sample_size=sample_size,
        stderr=stderr, harness=harness_name, harness_version=harness_version, dataset=dataset_name,
        dataset_revision=dataset_revision, evaluated_at=when,
    )


def _signing_keys(
    key_paths: Sequence[Path], signer_uri: str | None, signer_public_key: Path | None, signer_secret_env: str | None,
    passphrase_env: str | None, keyless: bool, sigstore_trust_config: Path | None,
) -> tuple[list[SigningKey], tuple[Any, Any] | None]:
    """The keys to sign with, or for ``--sigstore`` the identity token and the Sigstore instance. Raises UsageError
    or ConfigError (exit 2) for a combination that cannot work or a key, signer or token that is not usable."""
    if keyless:
        if key_paths or signer_uri:
            raise UsageError("--sigstore signs with a short-lived Sigstore key alone (a bundle holds one signature); "
                             "drop --key/--signer, or sign a second attestation with them")
        from tiergate.runtime.keyless import identity_token, trust_config

        return [], (identity_token(), trust_config(sigstore_trust_config))
    if sigstore_trust_config is not None:
        raise UsageError("--sigstore-trust-config is for --sigstore")
    if signer_secret_env is not None and signer_uri is None:
        raise UsageError("--signer-secret-env is for --signer")
    if (signer_uri is None) != (signer_public_key is None):
        raise UsageError("--signer URI and --signer-public-key FILE go together: the public key is what the trust "
                         "store lists and what the envelope records")
    if not key_paths and signer_uri is None:
        raise UsageError("say how to sign: --key FILE, --signer URI with --signer-public-key FILE, or --sigstore")
    passphrase = passphrase_from_env(passphrase_env)
    keys: list[SigningKey] = [PrivateKey.load(p, passphrase) for p in key_paths]
    if signer_uri is not None and signer_public_key is not None:
        from tiergate.runtime.signers import load_signer

        secret = passphrase_from_env(signer_secret_env, "--signer-secret-env")
        keys.append(load_signer(signer_uri, PublicKey.load(signer_public_key),
                                secret.decode("utf-8") if secret is not None else None))
    return keys, None


@click.command("attest")
@model_dir_argument
@click.option("--key", "key_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private key (PEM file) to sign with (repeat to co-sign).")
@click.option("--signer", "signer_uri", metavar="URI",
              help="Sign with a key held in a PKCS#11 token or a KMS (securesystemslib URI: hsm:, gcpkms:, awskms:, "
                   "azurekms:, hv:, file2:); needs --signer-public-key.")
@click.option("--signer-public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="Public key (PEM) of the --signer key, as the trust store lists it.")
@click.option("--signer-secret-env", metavar="VAR", help="The --signer's secret (the PIN of an hsm: token) is in $VAR.")
@click.option("--passphrase-env", metavar="VAR", help="Passphrase of the --key file(s) is in $VAR.")
@click.option("--sigstore", "keyless", is_flag=True,
              help="Sign keyless with Sigstore (identity token from $SIGSTORE_ID_TOKEN or the CI) into a Sigstore "
                   "bundle (*.sigstore.json).")
@click.option("--sigstore-trust-config", type=click.Path(dir_okay=False, path_type=Path),
              help="ClientTrustConfig JSON of a private Sigstore instance (default: the public-good instance).")
@click.option("--evaluator", "evaluator_id", required=True, help="Your evaluator id, as in the gate's trust store.")
@click.option("--organization", help="Your organization (informational; the trust store is authoritative).")
@click.option("--eval", "eval_name", help="Name of the evaluation, e.g. wmdp_bio.")
@click.option("--benchmark", help="Benchmark the policy matches on (default: the evaluation name).")
@click.option("--risk-domain", type=click.Choice(RISK_DOMAINS),
              help="Risk domain; optional, and refused unless it is the one the benchmark measures (see --policy).")
@policy_option
@click.option("--metric", "metrics", multiple=True, metavar="NAME=VALUE", help="A score (repeatable).")
@click.option("--stderr", "stderrs", multiple=True, metavar="NAME=VALUE", help="Standard error of a score.")
@click.option("--sample-size", type=click.IntRange(min=0), help="Number of samples the scores are over.")
@click.option("--harness", metavar="NAME[@VERSION]", help="Evaluation harness, e.g. lm-evaluation-harness@0.4.9.")
@click.option("--dataset", metavar="NAME[@REVISION]", help="Dataset, e.g. cais/wmdp@<commit>.")
@click.option("--evaluated-at", metavar="TIME", help="When the evaluation ran (RFC 3339).")
@click.option("--evidence", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Raw eval log to pin by digest.")
@click.option("--from-inspect", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read scores from an Inspect log (.eval or .json).")
@click.option("--from-lm-eval", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read scores from lm-evaluation-harness results JSON.")
@click.option("--task", help="Which task of a multi-task log to attest.")
@click.option("--subject-name", help="Name of the model in the statement (default: the folder name).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Where to write the attestation (default: MODEL_DIR/{ATTESTATION_DIR}/<evaluator>-<eval>"
                   ".intoto.json, or .sigstore.json with --sigstore).")
@click.option("--now", "now_text", metavar="TIME", help="Signing time (default: now).")
@skip_git_option
@no_cache_option
@quiet_option
def attest_command(
    model_dir: Path, key_paths: tuple[Path, ...], signer_uri: str | None, signer_public_key: Path | None,
    signer_secret_env: str | None, passphrase_env: str | None, keyless: bool, sigstore_trust_config: Path | None,
    evaluator_id: str,
    organization: str | None, eval_name: str | None, benchmark: str | None, risk_domain: str | None,
    policy_path: Path | None,
    metrics: tuple[str, ...], stderrs: tuple[str, ...], sample_size: int | None, harness: str | None,
    dataset: str | None, evaluated_at: str | None, evidence: Path | None, from_inspect: Path | None,
    from_lm_eval: Path | None, task: str | None, subject_name: str | None, output: Path | None,
    now_text: str | None, quiet: bool,
) -> None:
    """Sign an evaluation attestation for MODEL_DIR: an in-toto statement in a DSSE envelope.

    Sign with a PEM key (--key), a key in a PKCS#11 token or a KMS (--signer), or keyless with Sigstore (--sigstore,
    in CI: the envelope is wrapped in a Sigstore bundle with its certificate and transparency-log entry).

    Scores come from --metric options, or from a real eval log (--from-inspect, --from-lm-eval), which is refused
    if the run is incomplete. The statement pins every file's digest, so auditors know exactly what was evaluated.
    """
    if from_inspect and from_lm_eval:
        raise UsageError("give one of --from-inspect and --from-lm-eval, not both")
    policy = Policy.load(policy_path)  # its benchmark catalogue says which risk domain the evaluation measures
    keys, keyless_with = _signing_keys(key_paths, signer_uri, signer_public_key, signer_secret_env, passphrase_env,
                                       keyless, sigstore_trust_config)  # first: fail before a long hash
    log = from_inspect or from_lm_eval
    if log is not None:
        manual = {"--metric": metrics, "--stderr": stderrs, "--sample-size": sample_size, "--harness": harness,
                  "--dataset": dataset, "--evaluated-at": evaluated_at, "--evidence": evidence}
        given = [name for name, value in manual.items() if value]
        if given:
            raise UsageError(f"{', '.join(given)} cannot be combined with --from-inspect/--from-lm-eval: "
                             "those facts come from the log itself (attest other scores separately)")
        evidence_ref: EvidenceRef | None
        evaluation, evidence_ref = _from_log(log, "inspect" if from_inspect else "lm-eval", task)
        evaluation = replace(evaluation, name=eval_name or evaluation.name,
                             benchmark=benchmark or (benchmark_of_task(eval_name) if eval_name
                                                     else evaluation.benchmark))
    else:
        evaluation = _manual(eval_name, benchmark, _pairs(metrics, "--metric"), _pairs(stderrs, "--stderr"),
                             sample_size, harness, dataset, evaluated_at)
        evidence_ref = EvidenceRef(sha256=_file_sha256(evidence), name=evidence.name) if evidence else None
    evaluation = replace(evaluation, risk_domain=_risk_domain(evaluation.benchmark, risk_domain, policy))
    manifest = hash_with_progress(model_dir, quiet)
    statement = evaluation_statement(manifest, subject_name or model_dir.resolve().name, evaluation,
                                     EvaluatorRef(evaluator_id, organization), resolve_now(now_text), evidence_ref)
    if keyless_with is not None:
        from tiergate.runtime.keyless import BUNDLE_SUFFIX, sign_keyless

        document, suffix = sign_keyless(statement, *keyless_with), BUNDLE_SUFFIX
    else:
        document, suffix = sign_statement(statement, keys).to_json(), ".intoto.json"
    # Signed before anything is written: a signer that fails leaves no file and no folder behind.
    target = output or model_dir / ATTESTATION_DIR / f"{evaluator_id}-{evaluation.name.replace('/', '_')}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(document)
    click.echo(f"attested {evaluation.name} ({', '.join(f'{k}={v:g}' for k, v in evaluation.metrics.items())}) "
               f"for {manifest.digest}", err=True)
    click.echo(str(target))

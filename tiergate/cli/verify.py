"""``gate verify``: an auditor checks every signature and every subject, attestation by attestation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tiergate.cli._options import (
    configured, hash_with_progress, json_option, model_dir_argument, no_cache_option, now_option, policy_option,
    print_json, quiet_option, resolve_now, skip_git_option, trust_option,
)
from tiergate.core.collect import model_attestations, read_attestations
from tiergate.core.policy import Policy
from tiergate.core.timeutil import format_time
from tiergate.core.trust import TrustStore
from tiergate.core.verify import Rejection, VerifiedAttestation, unique_inputs, verify_all


def _accepted_row(item: VerifiedAttestation) -> dict[str, Any]:
    evaluation = item.evaluation
    return {
        "source": item.source,
        "digest": item.digest,
        "valid": True,
        "type": item.predicate_type,
        "evaluator": item.evaluator.evaluator_id,
        "organization": item.evaluator.organization,
        "signers": [s.evaluator_id for s in item.signers],
        "evaluation": evaluation.name if evaluation else None,
        "risk_domain": evaluation.risk_domain if evaluation else None,
        "metrics": dict(evaluation.metrics) if evaluation else {},
        # Metrics that are bounds (eval-result claims): "score": "<=" means the score is at most metrics.score.
        "bounds": dict(evaluation.bounds) if evaluation else {},
        # When something other than the signer dated the signature (Rekor, an RFC 3161 timestamp, the gate's log).
        "trusted_time": ({"time": format_time(item.trusted_time.time), "source": item.trusted_time.source}
                         if item.trusted_time else None),
        "reason": None,
    }


def _rejected_row(item: Rejection) -> dict[str, Any]:
    return {"source": item.source, "digest": item.digest, "valid": False, "reason": item.reason}


@click.command("verify")
@model_dir_argument
@click.argument("attestations", nargs=-1, type=click.Path(exists=True, path_type=Path))
@trust_option
@policy_option
@now_option
@json_option
@skip_git_option
@no_cache_option
@quiet_option
def verify_command(model_dir: Path, attestations: tuple[Path, ...], trust_path: Path | None, policy_path: Path | None,
                   now_text: str | None, as_json: bool, quiet: bool) -> None:
    """Verify ATTESTATIONS (files or folders; default MODEL_DIR/.attestations) for the model in MODEL_DIR.

    Checks evaluation attestations (DSSE envelopes, plain or in a Sigstore bundle) and OMS (model-signing)
    signatures made with a key, a certificate or Sigstore keyless, against the trust store and the files on disk; an
    evaluation's risk domain (and so the evaluator's scope) follows from its benchmark, per the policy's benchmark
    catalogue. Exit 0 when every one is valid, 1 otherwise.
    """
    store = TrustStore.load(configured(trust_path, "trust", "gate verify"))
    policy = Policy.load(configured(policy_path, "policy"))
    now = resolve_now(now_text)
    items = unique_inputs(read_attestations(attestations) if attestations else model_attestations(model_dir))
    manifest = hash_with_progress(model_dir, quiet)
    report = verify_all(items, store, manifest, now, policy.clock_skew, policy.benchmarks)
    rows = [_accepted_row(a) for a in report.accepted] + [_rejected_row(r) for r in report.rejected]
    rows.sort(key=lambda row: row["source"])
    if as_json:
        print_json({"model": manifest.digest, "attestations": rows})
    else:
        click.echo(f"model {manifest.digest}")
        for row in rows:
            if row["valid"]:
                dated = row["trusted_time"]
                when = f", signed at {dated['time']} ({dated['source']})" if dated else ""
                click.echo(f"  VALID    {row['source']}: {row['evaluation'] or 'OMS signature'} "
                           f"signed by {row['evaluator']} ({row['organization']}){when}")
            else:
                click.echo(f"  INVALID  {row['source']}: {row['reason']}")
    if not items:
        click.echo("gate: no attestations found; pass files or put them in MODEL_DIR/.attestations/", err=True)
        sys.exit(1)
    sys.exit(1 if report.rejected else 0)

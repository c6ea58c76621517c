"""``gate init``: a starting configuration a new user can read, edit and run as it is."""

from __future__ import annotations

import shlex
from importlib import resources
from pathlib import Path

import click

from tiergate.core.keys import PrivateKey, write_keypair
from tiergate.errors import UsageError

_CONFIG = """\
# tiergate configuration (read by every gate command and integration through GATE_CONFIG=gate.yaml).
# Relative paths are relative to this file. Environment variables (GATE_POLICY, GATE_TRUST, ...) win over it.
policy: policy.yaml       # the tier policy: what each release tier requires (edit the thresholds with your risk owners)
trust: trust.yaml         # the evaluators whose signed attestations count, with their keys (`gate trust add`)
log: gate-log.db          # every decision is appended to this Merkle log (SQLite file or postgresql:// URL)
key: gate.key             # the gate's own signing key: signs verification summaries (VSAs) and log checkpoints
# server: http://127.0.0.1:8700   # a shared gate service deciding for everyone instead (`gate serve`)
# token_env: GATE_TOKEN           # the environment variable holding that service's bearer token
# timeout: 30                     # seconds for a call to the service
"""

_TRUST = """\
# tiergate trust store: the evaluators whose signed evaluation attestations the gate believes.
# Schema: tiergate/data/schemas/trust-store.schema.json; guide: docs/platform-admin.md.
#
# Add an evaluator without editing by hand:
#   gate trust add trust.yaml --id uk-aisi --organization "UK AI Security Institute" --kind government \\
#       --pub uk-aisi.pub --scope cbrn --scope cyber
#
# Each entry looks like this:
#   - id: uk-aisi
#     organization: UK AI Security Institute
#     kind: government               # developer | third_party | government
#     scope: [cbrn, cyber]           # optional: the only risk domains this evaluator may attest
#     keys:
#       - pem: |                     # or path: keys/uk-aisi.pub (relative to this file)
#           -----BEGIN PUBLIC KEY-----
#           ...
#         valid_from: 2026-01-01T00:00:00Z   # optional validity window
#         revoked_at: 2026-09-01T00:00:00Z   # optional; with compromised: true nothing it signed counts
#       - sigstore:                  # or a Sigstore keyless identity (pip install 'tiergate[sigstore]')
#           issuer: https://token.actions.githubusercontent.com
#           identity: https://github.com/uk-aisi/evals/.github/workflows/eval.yml@refs/heads/main
#       - x509:                      # or certificates of the evaluator's own CA
#           roots: [pki/uk-aisi-root.pem]
#           san: model-signer@aisi.gov.uk
#
# With no evaluators, only the lowest tier (internal) can be allowed.
version: 1
evaluators: []
"""

_FILES = ("gate.yaml", "policy.yaml", "trust.yaml", "gate.key", "gate.pub")


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init_command(directory: Path) -> None:
    """Write a commented starter configuration into DIRECTORY: gate.yaml, policy.yaml (the default policy, to edit),
    trust.yaml (no evaluators yet) and the gate's key pair. Refuses to overwrite anything."""
    existing = [name for name in _FILES if (directory / name).exists()]
    if existing:
        raise UsageError(f"{directory}: {', '.join(existing)} already exist; gate init writes only into a fresh "
                         "configuration (choose another directory or move them away)")
    directory.mkdir(parents=True, exist_ok=True)
    policy = resources.files("tiergate.data").joinpath("default-policy.yaml").read_bytes()
    (directory / "policy.yaml").write_bytes(policy)
    (directory / "trust.yaml").write_text(_TRUST, encoding="utf-8")
    (directory / "gate.yaml").write_text(_CONFIG, encoding="utf-8")
    write_keypair(PrivateKey.generate(), directory / "gate")
    config = (directory / "gate.yaml").resolve()
    click.echo(f"wrote {', '.join(str(directory / name) for name in _FILES)}", err=True)
    # Paths as they are from where the command ran, quoted for the shell, so the next steps can be pasted.
    click.echo(f"next: export GATE_CONFIG={shlex.quote(str(config))}\n"
               f"      gate trust add {shlex.quote(str(directory / 'trust.yaml'))} --id ID --organization ORG "
               "--kind KIND --pub EVALUATOR.pub\n"
               "      gate check MODEL_DIR --tier hosted", err=True)

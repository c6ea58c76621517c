"""The ``gate`` command line.

Subcommands are imported lazily (click's documented LazyGroup pattern) so that ``gate --help`` and ``gate hash``
never import mlflow, huggingface_hub or the HTTP stack. Every command runs inside :func:`tiergate.cli._run.run_guarded`,
which turns errors into one line on stderr and the documented exit codes (0 allow, 1 deny, 2 usage/configuration).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from tiergate import __version__

#: command name -> "module:attribute", imported on first use.
COMMANDS: dict[str, str] = {
    "init": "tiergate.cli.init:init_command",
    "trust": "tiergate.cli.trust:trust_group",
    "hash": "tiergate.cli.identity:hash_command",
    "keygen": "tiergate.cli.keys:keygen_command",
    "attest": "tiergate.cli.attest:attest_command",
    "verify": "tiergate.cli.verify:verify_command",
    "check": "tiergate.cli.check:check_command",
    "policy": "tiergate.cli.policy:policy_group",
    "verify-vsa": "tiergate.cli.check:verify_vsa_command",
    "serve": "tiergate.cli.serve:serve_command",
    "log": "tiergate.cli.log:log_group",
    "witness": "tiergate.cli.witness:witness_command",
    "mlflow": "tiergate.cli.mlflow:mlflow_group",
    "hf": "tiergate.cli.hf:hf_group",
    "hooks": "tiergate.cli.hooks:hooks_group",
}

_HELP = {
    "init": "Write a commented starter configuration (config, policy, trust store, gate key).",
    "trust": "Add evaluators to a trust store without editing YAML by hand.",
    "hash": "Print a model directory's digest (its OMS-compatible manifest).",
    "keygen": "Create a signing key pair for an evaluator or the gate.",
    "attest": "Sign an evaluation attestation binding scores to a model's digest.",
    "verify": "Verify attestations and OMS signatures against a trust store and a model.",
    "check": "Decide whether a model may be released at a tier.",
    "policy": "Validate or explain a tier policy.",
    "verify-vsa": "Verify a signed verification summary (VSA) of a decision.",
    "serve": "Run the gate service (decisions, attestation store, transparency log).",
    "log": "Audit the transparency log of decisions, offline.",
    "witness": "Run a C2SP witness that cosigns consistent checkpoints of gate logs.",
    "mlflow": "Gate MLflow model-registry publishes.",
    "hf": "Gate Hugging Face Hub publishes.",
    "hooks": "Install git hooks that gate pushes of weights.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("tiergate."):
                return None  # not built in this version
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from a table so listing commands imports none of them.
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx) if self._available(name)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        return importlib.util.find_spec(COMMANDS[name].split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="gate")
def cli() -> None:
    """tiergate: verify signed evaluation evidence before model weights are published.

    Exit codes: 0 allowed / valid, 1 denied / invalid, 2 usage or configuration error.
    """


def main(argv: list[str] | None = None) -> Any:
    from tiergate.cli._run import run_guarded

    return run_guarded(cli, argv if argv is not None else sys.argv[1:])

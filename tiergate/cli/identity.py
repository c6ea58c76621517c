"""``gate hash``: a model's identity."""

from __future__ import annotations

from pathlib import Path

import click

from tiergate.cli._options import (hash_with_progress, json_option, model_dir_argument, no_cache_option, print_json,
                                   quiet_option, skip_git_option)


@click.command("hash")
@model_dir_argument
@json_option
@skip_git_option
@no_cache_option
@quiet_option
def hash_command(model_dir: Path, as_json: bool, quiet: bool) -> None:
    """Print MODEL_DIR's digest: sha256 over the per-file SHA-256s (OMS ``files`` serialization).

    Ignored: .git, .gitattributes, .gitignore, .github (as OMS) and the gate's .attestations/ folder.
    """
    manifest = hash_with_progress(model_dir, quiet)
    if as_json:
        print_json({"model": str(model_dir), **manifest.to_dict(content=True), "total_size": manifest.total_size})
    else:
        click.echo(manifest.digest)

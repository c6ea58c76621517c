"""``gate keygen``: signing keys for evaluators and for the gate itself."""

from __future__ import annotations

import click

from tiergate.cli._options import passphrase_from_env
from tiergate.core.keys import ALGORITHMS, PrivateKey, write_keypair


@click.command("keygen")
@click.argument("name")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="ed25519", show_default=True)
@click.option("--passphrase-env", "passphrase_env", metavar="VAR",
              help="Encrypt the private key with the passphrase in $VAR.")
def keygen_command(name: str, algorithm: str, passphrase_env: str | None) -> None:
    """Write NAME.key (PEM, mode 0600) and NAME.pub, and print the key id (SHA-256 of the DER public key)."""
    passphrase = passphrase_from_env(passphrase_env)
    key = PrivateKey.generate(algorithm)
    private_path, public_path = write_keypair(key, name, passphrase)
    click.echo(f"wrote {private_path} (keep secret) and {public_path} (share with the gate's trust store)", err=True)
    click.echo(key.key_id)

"""hopsplane secrets: keys for encryption at rest."""

from __future__ import annotations

import typer

from hopsplane.cli.common import console
from hopsplane.crypto import SecretBox

app = typer.Typer(help="Encryption keys for secrets stored in the database.", no_args_is_help=True)


@app.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for HOPSPLANE_ENCRYPTION_KEYS (put it first to make it the
    key that encrypts; keep the old keys after it until everything is re-encrypted)."""
    console.print(SecretBox.generate_key())

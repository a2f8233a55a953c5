"""hopsplane secrets: keys for encryption at rest."""

from __future__ import annotations

import typer

from hopsplane.cli.common import console, encryption_box_keys, friendly, load_settings, transaction
from hopsplane.clusters import service as clusters
from hopsplane.crypto import SecretBox

app = typer.Typer(help="Encryption keys for secrets stored in the database.", no_args_is_help=True)


@app.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for HOPSPLANE_ENCRYPTION_KEYS (put it first to make it the
    key that encrypts; keep the old keys after it until everything is re-encrypted)."""
    console.print(SecretBox.generate_key())


@app.command()
@friendly
def rotate() -> None:
    """Re-encrypt every stored secret (both API keys of each cluster, kubeconfigs) under
    the first key of HOPSPLANE_ENCRYPTION_KEYS. Rotation: prepend a new key, run this, then
    remove the old key. All or nothing: a secret no configured key can decrypt changes
    nothing."""
    settings = load_settings()
    box = SecretBox(encryption_box_keys(settings))
    with transaction(settings) as session:
        n = clusters.rotate_secrets(session, box)
    console.print(f"re-encrypted the secrets of {n} cluster(s) under the first key")

"""hopsplane db: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from hopsplane.cli.common import console, database_url, friendly, load_settings
from hopsplane.db import migrate
from hopsplane.db.engine import libpq_conninfo

app = typer.Typer(
    help="Manage the database schema (Alembic revisions shipped inside hopsplane). "
    "Uses HOPSPLANE_DATABASE_URL, or the embedded PostgreSQL when it is unset.",
    no_args_is_help=True,
)


@app.command()
@friendly
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest). Safe to run twice."""
    url = database_url(load_settings())
    migrate.upgrade(url, revision)
    console.print(f"database at revision [bold]{migrate.current(url)}[/bold]")


@app.command()
@friendly
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: an id, -1, or base.")],
) -> None:
    """Revert migrations down to REVISION. Refuses to drop a non-empty ledger."""
    url = database_url(load_settings())
    migrate.downgrade(url, revision)
    console.print(f"database at revision [bold]{migrate.current(url) or 'base'}[/bold]")


@app.command()
@friendly
def current() -> None:
    """Print the revision the database is at, and the newest one available."""
    url = database_url(load_settings())
    console.print(f"current: {migrate.current(url) or 'base (empty)'}")
    console.print(f"head:    {', '.join(migrate.heads())}")


@app.command()
@friendly
def check() -> None:
    """Exit non-zero unless the database is at head and the models match the migrations."""
    migrate.check(database_url(load_settings()))
    console.print("schema is at head and matches the models")


@app.command()
@friendly
def url() -> None:
    """Print the connection string of the database in use (the embedded one included,
    started if needed) for psql and other tools: `psql "$(hopsplane db url)"`. It may
    contain the password: do not paste it anywhere shared."""
    url = database_url(load_settings())
    if url.count("host=") > 1:  # a multi-host URL: libpq's key=value form is what psql reads
        typer.echo(libpq_conninfo(url))
    else:
        typer.echo(url.replace("postgresql+psycopg://", "postgresql://"))

"""Dependencies shared by the routers: the database session of the request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from hopsplane.db.engine import Database


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def db_session(db: Annotated[Database, Depends(database)]) -> Iterator[Session]:
    """One transaction per request: committed before the response is sent (scope
    "function"), rolled back if the endpoint raises."""
    with db.transaction() as session:
        yield session


SessionDep = Annotated[Session, Depends(db_session, scope="function")]

import pytest
from sqlalchemy import create_engine, inspect, text

from hopsplane.db import migrate
from hopsplane.db.models import PUBLIC_TABLES, Base
from hopsplane.errors import Conflict
from tests.pg import PgServer


def test_there_is_exactly_one_head() -> None:
    assert len(migrate.heads()) == 1


def test_upgrade_downgrade_upgrade_on_an_empty_database(pg: PgServer) -> None:
    url = pg.empty_database()
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.heads()[0]
    migrate.check(url)
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
    finally:
        engine.dispose()
    migrate.upgrade(url)
    migrate.check(url)


def test_public_schema_holds_the_six_core_tables_and_the_plans_organizations(
    shared_url: str,
) -> None:
    engine = create_engine(shared_url)
    try:
        assert set(inspect(engine).get_table_names(schema="public")) == set(PUBLIC_TABLES)
        machinery = set(inspect(engine).get_table_names(schema="hopsplane"))
        modelled = {t.name for t in Base.metadata.tables.values() if t.schema == "hopsplane"}
        assert machinery == {"alembic_version"} | modelled
    finally:
        engine.dispose()


def test_check_detects_a_schema_that_drifted_from_the_models(pg: PgServer) -> None:
    url = pg.migrated_database()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE users ADD COLUMN nickname text"))
    engine.dispose()
    with pytest.raises(Conflict, match="models and migrations disagree"):
        migrate.check(url)


def test_check_refuses_a_database_behind_head(pg: PgServer) -> None:
    with pytest.raises(Conflict, match="db upgrade"):
        migrate.check(pg.empty_database())


def test_downgrade_refuses_to_drop_a_ledger_with_entries(pg: PgServer) -> None:
    url = pg.migrated_database()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')"))
        conn.execute(text(
            "INSERT INTO credits_ledger (account_owner_id, seq, amount, balance, type, "
            "idempotency_key) VALUES ('u1', 1, 5, 5, 'grant', 'g1')"
        ))
    engine.dispose()
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        migrate.downgrade(url, "base")
    assert migrate.current(url) == migrate.heads()[0]

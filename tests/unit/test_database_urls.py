"""Database URLs: the libpq multi-host form a Patroni cluster is reached with."""

import pytest
from sqlalchemy.engine import make_url

from hopsplane.config import Settings, normalise_database_url
from hopsplane.db.engine import libpq_conninfo

MULTI = "postgresql://app:pw@db1:5432,db2:5433,db3:5434/hopsplane"


def test_a_multi_host_url_is_rewritten_into_the_form_sqlalchemy_parses() -> None:
    url = normalise_database_url(MULTI + "?target_session_attrs=read-write&sslmode=require")
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.database == "hopsplane" and parsed.username == "app"
    assert parsed.password == "pw"
    assert parsed.query["host"] == ("db1:5432", "db2:5433", "db3:5434")
    assert parsed.query["target_session_attrs"] == "read-write"
    assert parsed.query["sslmode"] == "require"
    assert normalise_database_url(url) == url  # idempotent: Settings and Database both call it


def test_several_hosts_default_to_the_primary_only() -> None:
    assert make_url(normalise_database_url(MULTI)).query["target_session_attrs"] == "read-write"
    chosen = normalise_database_url(MULTI + "?target_session_attrs=primary")
    assert make_url(chosen).query["target_session_attrs"] == "primary"


def test_a_host_without_a_port_gets_the_default_one() -> None:
    parsed = make_url(normalise_database_url("postgres://u@a,b:6432/d"))
    assert parsed.query["host"] == ("a:5432", "b:6432")


@pytest.mark.parametrize("url", [
    "postgresql://root@127.0.0.1:5432/postgres",
    "postgresql+psycopg://u:p@h/d?sslmode=require",
    "postgresql://u@[::1]:5432/d",
])
def test_a_single_host_url_is_left_as_it_was(url: str) -> None:
    assert normalise_database_url(url).split("://", 1)[1] == url.split("://", 1)[1]


def test_the_libpq_form_lists_hosts_and_ports_in_order() -> None:
    info = dict(part.split("=", 1) for part in libpq_conninfo(MULTI).split())
    assert info["host"] == "db1,db2,db3" and info["port"] == "5432,5433,5434"
    assert info["dbname"] == "hopsplane" and info["user"] == "app"
    assert info["target_session_attrs"] == "read-write"


def test_settings_accept_a_multi_host_url() -> None:
    s = Settings(database_url=MULTI, _env_file=None)  # type: ignore[call-arg]
    assert s.database_url is not None and "host=db2:5433" in s.database_url


def test_ipv6_hosts_lose_their_brackets_in_the_libpq_form() -> None:
    info = dict(part.split("=", 1) for part in libpq_conninfo(
        "postgresql://u@[::1]:5432,[::2]:5433/d").split())
    assert info["host"] == "::1,::2" and info["port"] == "5432,5433"

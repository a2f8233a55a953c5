from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from hopsplane.api.app import create_app
from hopsplane.config import Settings
from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.integrations.email import Email, LogMailer, SmtpMailer
from tests.apps import Api, email_links, id_settings, link_problem
from tests.factories import TEST_ENCRYPTION_KEY
from tests.fake_smtp import SmtpInbox
from tests.payments.fakes import TEST_KEY, WEBHOOK_SECRET, LocalStripe, StripeFront
from tests.pg import PgServer

# CI replays the same generated cases every run (a red CI is then a real, reproducible
# failure, never the luck of the draw); locally every run explores new cases.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    from tests import secret_watch

    secret_watch.start([TEST_KEY, WEBHOOK_SECRET, TEST_ENCRYPTION_KEY, "x" * 40, "s" * 40])


_WORKER_LEAKS: list[tuple[int, list[str], str]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under xdist: each worker greps its own logs and hands the result to the controller
    (a worker's exit status alone does not fail the run)."""
    output = getattr(node, "workeroutput", {})
    if "secret_watch" in output:
        watched, found, where = output["secret_watch"]
        _WORKER_LEAKS.append((watched, found, where))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The log grep of the whole run: a token or secret that the suite created
    and that reached a log line fails the run, naming where the lines are."""
    from tests import secret_watch

    watched, found = secret_watch.leaks()
    where = str(secret_watch.log_file())
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller decides
        workeroutput["secret_watch"] = (watched, found, where)
        if not found:
            secret_watch.discard()
        return
    reports = [(watched, found, where), *_WORKER_LEAKS]
    watched = sum(w for w, _f, _p in reports)
    found = [s for _w, f, _p in reports for s in f]
    places = sorted({p for _w, f, p in reports if f})
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if found:
        shown = ", ".join(f"{s[:6]}...({len(s)} chars)" for s in found[:10])
        if reporter is not None:
            reporter.write_line(
                f"SECRETS IN LOGS: {len(found)} of {watched} tokens/secrets created by the "
                f"suite were written to a log line ({shown}); see {', '.join(places)}",
                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        secret_watch.discard()
        if reporter is not None:
            reporter.write_line(f"secret watch: none of {watched} tokens and secrets created "
                                "by the suite reached a log line")


def pytest_report_header() -> str:
    import os

    where = os.environ.get("HOPSPLANE_TEST_DATABASE_URL") or "embedded PostgreSQL"
    return f"hopsplane test database server: {where}"


# --- every link in every email the suite sends ----------------------------------------------
# Every message that leaves hopsplane goes through a Mailer's send: LogMailer (development
# and the apps under test) or SmtpMailer (RefusingMailer sends nothing). The autouse fixture
# records what each test sent there; after the test body, while its app and database are
# still up, every link is followed on the test's own app (a fresh client: signed out) or, for
# tests without one, on an app of this worker over the shared database.

_SENT = pytest.StashKey[list[Email]]()
_LINK_APPS: dict[str, TestClient] = {}


@pytest.fixture(autouse=True)
def _record_sent_emails(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Email] = []
    request.node.stash[_SENT] = sent
    for cls in (LogMailer, SmtpMailer):
        def recording(self: Any, message: Email, _send: Any = cls.send) -> None:
            _send(self, message)  # only what was sent: a refused or failed send raised
            sent.append(message)
        monkeypatch.setattr(cls, "send", recording)


def _link_client(item: pytest.Item) -> TestClient:
    own = next((v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Api)), None)
    if own is not None:
        return TestClient(own.app, base_url="https://testserver")
    url: str = item._request.getfixturevalue("shared_url")  # type: ignore[attr-defined]
    if url not in _LINK_APPS:
        app = create_app(id_settings(), database=Database(url))
        _LINK_APPS[url] = TestClient(app, base_url="https://testserver")
    return _LINK_APPS[url]


@pytest.hookimpl(wrapper=True, trylast=True)  # innermost: inside output capture
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    links = sorted({link for m in item.stash.get(_SENT, []) for link in email_links(m)})
    if links:
        client = _link_client(item)
        broken = [p for p in (link_problem(client, link) for link in links) if p]
        if broken:
            pytest.fail("an email this test sent links to a page that does not exist: "
                        + "; ".join(broken), pytrace=False)
    return result


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def shared_url(pg: PgServer) -> str:
    """One migrated database for the tests that roll back everything they do."""
    return pg.migrated_database()


@pytest.fixture(scope="session")
def shared_engine(shared_url: str) -> Iterator[Engine]:
    engine = create_engine(shared_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(shared_engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test: commits inside
    the code under test become savepoints."""
    with shared_engine.connect() as conn:
        outer = conn.begin()
        s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield s
        finally:
            s.close()
            outer.rollback()


@pytest.fixture
def fresh_url(pg: PgServer) -> str:
    """A database of this test's own, at head, for code that commits or races."""
    return pg.migrated_database()


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", secret_key="x" * 40, encryption_keys=TEST_ENCRYPTION_KEY)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, fresh_url: str) -> Iterator[str]:
    """The environment of an operator running the CLI against this test's own database."""
    from hopsplane.config import get_settings

    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", fresh_url)
    monkeypatch.setenv("HOPSPLANE_ENVIRONMENT", "development")
    get_settings.cache_clear()
    yield fresh_url
    get_settings.cache_clear()


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.effective_encryption_keys)


@pytest.fixture
def fresh_db(fresh_url: str, settings: Settings) -> Iterator[Database]:
    db = Database(fresh_url, settings)
    yield db
    db.dispose()


@pytest.fixture
def hw() -> Iterator[FakeHopsworks]:
    """A Hopsworks stand-in on a free 127.0.0.1 port, answering as a default cluster."""
    server = FakeHopsworks()
    yield server
    server.close()


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """A local Stripe API (PyPI localstripe) on 127.0.0.1, started on first use."""
    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stripe_front(localstripe: LocalStripe) -> Iterator[StripeFront]:
    """localstripe behind a small front that also answers Checkout Sessions like Stripe."""
    front = StripeFront(localstripe.url)
    yield front
    front.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, SmtpInbox]]:
    """A real SMTP server on a free 127.0.0.1 port: (port, inbox)."""
    import socket

    from aiosmtpd.controller import Controller

    inbox = SmtpInbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()




@pytest.fixture
def api(fresh_db: Database) -> Iterator[Api]:
    """The app whose identity is the local development issuer (real RSA keys, real JWKS
    over HTTP), with callers holding real access tokens."""
    app = create_app(id_settings(), database=fresh_db)
    # https: outside development the session cookies are Secure, and a client keeps
    # them only for https.
    with TestClient(app, base_url="https://testserver") as client:
        yield Api(app, client)


@pytest.fixture
def web(fresh_db: Database, stripe_front: StripeFront) -> Iterator[Api]:
    """The console and API with the local issuer and a local Stripe."""
    settings = id_settings(
        stripe_secret_key=TEST_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_front.url, stripe_min_topup=Decimal("5.00"),
        stripe_max_topup=Decimal("5000.00"),
    )
    app = create_app(settings, database=fresh_db)
    with TestClient(app, base_url="https://testserver") as client:
        yield Api(app, client)

"""Outbound webhooks against a real local HTTPS server: deliveries are queued by the
publish point in the causing transaction, signed per Standard Webhooks (verified here
with the specification's own library), retried, disabled after the window, replayable;
addresses are checked on the resolved address at send time."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from hopsplane.crypto import SecretBox
from hopsplane.db.engine import Database
from hopsplane.errors import Invalid
from hopsplane.integrations.email import LogMailer
from hopsplane.integrations.webhooks import (
    TIMEOUT_PREFIX,
    AddressRefused,
    HttpSender,
    check_url,
)
from hopsplane.notices import service as notices
from hopsplane.notices.schemas import AccountEvent
from hopsplane.webhooks import service as webhooks
from hopsplane.webhooks import tasks as webhook_tasks
from hopsplane.webhooks.schemas import EndpointIn
from hopsplane.worker import service as queue
from tests.apps import Api, csrf_of
from tests.factories import TEST_ENCRYPTION_KEY, job_context, make_user, notice_jobs, post
from tests.tls_certs import Ca, make_ca, server_context

HOST = "hooks.test"


class Consumer:
    """An HTTPS server on 127.0.0.1 with a certificate for ``hooks.test``: records every
    request and answers ``status``."""

    def __init__(self, ca: Ca) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok " + b"x" * 1000)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = server_context(ca, host=HOST).wrap_socket(
            self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}/hook?src=hopsplane"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca() -> Ca:
    return make_ca("webhook consumer CA")


@pytest.fixture
def consumer(ca: Ca) -> Iterator[Consumer]:
    c = Consumer(ca)
    yield c
    c.close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([TEST_ENCRYPTION_KEY])


def _sender(ca: Ca, *, open_loopback: bool = True) -> HttpSender:
    """The real sender; the test's name resolves to 127.0.0.1, which only this sender
    may reach (the worker's never can)."""
    return HttpSender(ca_bundle=ca.pem, resolver=lambda host, port: ["127.0.0.1"],
                      open_networks=[ipaddress.ip_network("127.0.0.1/32")] if open_loopback
                      else [])


def _work(db: Database, box: SecretBox, sender: HttpSender, now: datetime | None = None) -> int:
    """Run what the worker would (deliveries and notices); returns how many delivery
    attempts ran."""
    ctx = job_context(db, box=box, webhook_sender=sender, mailer=LogMailer())
    if now is not None:
        ctx.clock = lambda: now
    ran = 0
    handlers = {webhooks.DELIVER_TASK: webhook_tasks.deliver_job,
                notices.SEND_TASK: notices.send_notice}
    while (job := queue.run_one(db, handlers, ctx, now)) is not None:
        ran += job.task == webhooks.DELIVER_TASK
    return ran


def _endpoint(db: Database, box: SecretBox, account: str, url: str,
              types: list[str] | None = None) -> Any:
    with db.transaction() as s:
        return webhooks.create_endpoint(
            s, box, account, EndpointIn(url=url, event_types=types or ["low_balance"]),
            created_by=account, allow_http=False)


def _deliveries(db: Database) -> list[Any]:
    with db.transaction() as s:
        return list(s.execute(text(
            "SELECT id, status, attempts, response_status, response_prefix, error, message_id "
            "FROM hopsplane.webhook_deliveries ORDER BY created_at, id")))


def test_an_event_is_delivered_signed_once_per_endpoint(
    fresh_db: Database, box: SecretBox, ca: Ca, consumer: Consumer,
) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
        post(s, a, "grant", "12.00")
    created = _endpoint(fresh_db, box, a, consumer.url, ["low_balance", "recovered"])
    assert created.secret.startswith("whsec_")
    with fresh_db.transaction() as s:
        post(s, a, "usage", "-5.00")  # low balance: the delivery is queued with the posting
        assert len(s.execute(text("SELECT id FROM hopsplane.webhook_deliveries")).all()) == 1
    assert _work(fresh_db, box, _sender(ca)) == 1
    [(headers, body)] = consumer.requests
    assert headers["host"] == f"{HOST}:{consumer.port}"  # the name, though we dialled an IP
    payload = Webhook(created.secret).verify(body, headers)  # raises unless signed right
    assert payload["type"] == "low_balance"
    assert payload["data"]["account_id"] == a and payload["data"]["balance"] == "7.00"
    [d] = _deliveries(fresh_db)
    assert (d.status, d.attempts, d.response_status) == ("succeeded", 1, 200)
    assert headers["webhook-id"] == d.message_id
    assert len(d.response_prefix) == 256  # a short prefix of the answer, no more
    assert _work(fresh_db, box, _sender(ca)) == 0  # done: never sent twice
    with fresh_db.transaction() as s:
        post(s, a, "usage", "-0.10")  # still in the same dip: no new event
    assert _work(fresh_db, box, _sender(ca)) == 0 and len(consumer.requests) == 1


def test_a_rolled_back_cause_delivers_nothing(
    fresh_db: Database, box: SecretBox, consumer: Consumer,
) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
    _endpoint(fresh_db, box, a, consumer.url)
    with pytest.raises(RuntimeError), fresh_db.transaction() as s:
        post(s, a, "grant", "5.00")  # low balance
        raise RuntimeError("the cause fails")
    assert _deliveries(fresh_db) == [] and notice_jobs(fresh_db) == []


def test_failures_are_retried_and_after_three_days_the_endpoint_is_disabled(
    fresh_db: Database, box: SecretBox, ca: Ca, consumer: Consumer,
) -> None:
    consumer.status = 500
    with fresh_db.transaction() as s:
        a = make_user(s)
    endpoint = _endpoint(fresh_db, box, a, consumer.url)
    with fresh_db.transaction() as s:
        post(s, a, "grant", "5.00")
    now = datetime.now(UTC)
    _work(fresh_db, box, _sender(ca), now)
    [d] = _deliveries(fresh_db)
    assert (d.status, d.response_status) == ("pending", 500)  # to be retried with backoff
    _work(fresh_db, box, _sender(ca), now + timedelta(hours=2))
    assert _deliveries(fresh_db)[0].attempts >= 2
    _work(fresh_db, box, _sender(ca), now + timedelta(days=3, hours=1))
    [d] = _deliveries(fresh_db)
    assert d.status == "failed" and "500" in d.error
    with fresh_db.transaction() as s:
        [out] = webhooks.endpoints(s, a)
    assert out.id == endpoint.id and not out.enabled and "3 days" in (out.disabled_reason or "")
    assert [j.args["kind"] for j in notice_jobs(fresh_db)
            if j.args["kind"] == "webhook_disabled"] == ["webhook_disabled"]  # owner emailed
    with fresh_db.transaction() as s:  # the system's decision, audited once
        disabled = s.execute(text(
            "SELECT actor_kind, before, after FROM hopsplane.audit_log "
            "WHERE action = 'webhooks.endpoint_disabled' AND account_owner_id = :a"),
            {"a": a}).all()
    assert [(r.actor_kind, r.before, r.after["enabled"]) for r in disabled] == [
        ("system", {"enabled": True}, False)]
    with fresh_db.transaction() as s:  # a disabled endpoint gets no new deliveries
        post(s, a, "grant", "20.00")
        post(s, a, "usage", "-24.00")
    assert len(_deliveries(fresh_db)) == 1
    consumer.status = 200
    with fresh_db.transaction() as s:
        webhooks.enable_endpoint(s, a, endpoint.id)
        replayed = webhooks.replay(s, a, endpoint.id, d.id)
    assert replayed.status == "pending"
    _work(fresh_db, box, _sender(ca))
    assert _deliveries(fresh_db)[0].status == "succeeded"
    ids = {h["webhook-id"] for h, _ in consumer.requests}
    assert ids == {d.message_id}  # every attempt and the replay: one id to dedupe by


def test_a_rotated_secret_signs_alongside_the_old_one_during_the_overlap(
    fresh_db: Database, box: SecretBox, ca: Ca, consumer: Consumer,
) -> None:
    with fresh_db.transaction() as s:
        a = make_user(s)
    first = _endpoint(fresh_db, box, a, consumer.url)
    with fresh_db.transaction() as s:
        second = webhooks.rotate_secret(s, box, a, first.id)
    assert second.secret != first.secret and second.previous_secret_until is not None
    with fresh_db.transaction() as s:
        post(s, a, "grant", "5.00")
    _work(fresh_db, box, _sender(ca))
    [(headers, body)] = consumer.requests
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(first.secret).verify(body, headers)  # a consumer not switched yet
    Webhook(second.secret).verify(body, headers)
    with fresh_db.transaction() as s:
        stored = s.execute(text("SELECT secret, previous_secret FROM "
                                "hopsplane.webhook_endpoints")).one()
    assert first.secret not in stored and second.secret not in stored  # encrypted at rest


def test_the_resolved_address_is_checked_at_send_time(
    fresh_db: Database, box: SecretBox, ca: Ca, consumer: Consumer,
) -> None:
    """A name that passed registration and then resolves to 127.0.0.1 (DNS rebinding) is
    refused when the delivery is sent; nothing reaches the server."""
    with fresh_db.transaction() as s:
        a = make_user(s)
    _endpoint(fresh_db, box, a, consumer.url)
    with fresh_db.transaction() as s:
        post(s, a, "grant", "5.00")
    _work(fresh_db, box, _sender(ca, open_loopback=False))
    [d] = _deliveries(fresh_db)
    assert d.status == "failed" and "127.0.0.1" in d.error and consumer.requests == []


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "https://127.0.0.1/hook", "https://169.254.169.254/latest",
    "https://[::1]/hook", "https://10.0.0.8/hook", "https://192.168.1.1/hook",
    "https://100.64.0.1/hook", "https://[::ffff:127.0.0.1]/hook", "https://localhost/hook",
    "https://user:pw@example.com/hook", "ftp://example.com/x", "https:///nohost",
    "https://example.com/a\x00b", "https://example.com/a b", "https://0.0.0.0/",
])
def test_urls_a_webhook_may_never_be_registered_for(url: str) -> None:
    with pytest.raises(Invalid):
        check_url(url, allow_http=False)


def test_the_sender_refuses_names_that_resolve_to_private_addresses() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fd00:ec2::254"):
        sender = HttpSender(resolver=lambda host, port, a=address: [a])  # type: ignore[misc]
        with pytest.raises(AddressRefused):
            sender.post("https://example.com/hook", {}, b"{}")
    mixed = HttpSender(resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(AddressRefused):
        mixed.post("https://example.com/hook", {}, b"{}")


def test_the_api_registers_shows_the_secret_once_and_guards_the_account(api: Api) -> None:
    owner, headers = api.new_user()
    other, other_headers = api.new_user()
    base = "/v1/account/webhooks"
    r = api.client.post(base, json={"url": "https://hooks.example.com/x",
                                    "event_types": ["low_balance", "auto_topup.failed"],
                                    "description": "pager"}, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    listed = api.client.get(base, headers=headers).json()
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    for body in ({"url": "https://127.0.0.1/x", "event_types": ["low_balance"]},
                 {"url": "https://169.254.169.254/x", "event_types": ["low_balance"]},
                 {"url": "http://hooks.example.com/x", "event_types": ["low_balance"]},
                 {"url": "https://hooks.example.com/x", "event_types": ["nope"]},
                 {"url": "https://hooks.example.com/x", "event_types": []}):
        bad = api.client.post(base, json=body, headers=headers)
        assert bad.status_code == 422 and bad.json()["code"], (body, bad.text)
    assert api.client.get(base, headers=other_headers).json() == []
    theirs = f"{base}/{created['id']}"
    assert api.client.delete(theirs, headers=other_headers).status_code == 404
    assert api.client.post(f"{theirs}/rotate-secret", headers=other_headers).status_code == 404
    assert api.client.get(f"{theirs}/deliveries", headers=other_headers).status_code == 404
    rotated = api.client.post(f"{theirs}/rotate-secret", headers=headers).json()
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_until"]
    assert api.client.get(f"{theirs}/deliveries", headers=headers).json() == []
    missing = f"{theirs}/deliveries/{uuid.uuid4()}/replay"
    assert api.client.post(missing, headers=headers).status_code == 404
    assert api.client.delete(theirs, headers=headers).status_code == 204
    assert api.client.get(base, headers=headers).json() == []
    assert other and owner
    # a team member who is no organization admin may not manage the account's webhooks
    with api.db.transaction() as s:
        member = make_user(s, owner=owner)
    member_headers = api.auth(member)
    assert api.client.get(base, headers=member_headers).status_code == 403
    types = api.client.get("/v1/account/webhook-event-types", headers=headers)
    assert json.loads(types.text)[0] == "low_balance"


def test_the_tls_name_is_checked_against_the_url_host(
    ca: Ca, consumer: Consumer,
) -> None:
    """Pinning the address keeps the certificate check on the URL's name: a name the
    certificate does not cover is refused."""
    sender = _sender(ca)
    ok = sender.post(consumer.url, {"content-type": "application/json"}, b"{}")
    assert ok.status == 200
    from hopsplane.errors import Unavailable

    with pytest.raises(Unavailable, match=r"SSL|certificate"):
        sender.post(f"https://other.test:{consumer.port}/hook", {}, b"{}")
    assert isinstance(sender.context, ssl.SSLContext)


def test_the_console_page_adds_an_endpoint_and_shows_its_secret_once(web: Api) -> None:
    owner, headers = web.new_user()
    page = web.client.get("/console/webhooks", headers=headers)
    assert page.status_code == 200 and "Add an endpoint" in page.text
    token = csrf_of(page.text)
    added = web.client.post("/console/webhooks", data={
        "csrf": token, "url": "https://hooks.example.com/in", "description": "pager",
        "type:low_balance": "1", "type:dispute_opened": "1"}, headers=headers)
    assert added.status_code == 201, added.text
    [secret] = re.findall(r"whsec_[A-Za-z0-9+/=]+", added.text)
    again = web.client.get("/console/webhooks", headers=headers)
    assert "hooks.example.com/in" in again.text and secret not in again.text
    refused = web.client.post("/console/webhooks", data={
        "csrf": token, "url": "https://169.254.169.254/latest", "type:low_balance": "1"},
        headers=headers)
    assert refused.status_code == 422 and "role=\"alert\"" in refused.text
    assert owner


def test_team_changes_are_delivered_to_endpoints_that_want_them(
    fresh_db: Database, box: SecretBox, ca: Ca, consumer: Consumer,
) -> None:
    from hopsplane.teams import service as teams
    from tests.factories import RecordingHooks

    with fresh_db.transaction() as s:
        owner = make_user(s)
        member = make_user(s, owner=owner)
    _endpoint(fresh_db, box, owner, consumer.url, ["member_left"])
    with fresh_db.transaction() as s:
        teams.remove_member(s, RecordingHooks(), owner, member)
    _work(fresh_db, box, _sender(ca))
    [(_headers, body)] = consumer.requests
    event = json.loads(body)
    assert event["type"] == "member_left" and event["data"]["member_id"] == member
    assert event["data"]["account_id"] == owner


def test_one_event_published_by_two_transactions_is_one_delivery_per_endpoint(
    fresh_db: Database, box: SecretBox, ca: Ca, consumer: Consumer,
) -> None:
    from hopsplane.notices.schemas import AccountEvent

    with fresh_db.transaction() as s:
        a = make_user(s)
    _endpoint(fresh_db, box, a, consumer.url, ["member_joined"])
    _endpoint(fresh_db, box, a, consumer.url + "&second=1", ["member_joined"])
    event = AccountEvent("member_joined", a, f"member_joined:{a}:x", {"member_id": "m"})
    for _ in range(2):  # a retried cause
        with fresh_db.transaction() as s:
            notices.publish(s, event)
    assert len(_deliveries(fresh_db)) == 2  # one per endpoint
    _work(fresh_db, box, _sender(ca))
    assert len(consumer.requests) == 2
    assert len({h["webhook-id"] for h, _ in consumer.requests}) == 1  # one event, one id
    with fresh_db.transaction() as s:  # a month later the log forgets finished ones
        assert webhooks.prune(s, datetime.now(UTC) + timedelta(days=31)) == 2
    assert _deliveries(fresh_db) == []


def test_endpoint_decisions_are_audited_once_with_before_and_after_never_the_secret(
    api: Api,
) -> None:
    owner, headers = api.new_user()
    base = "/v1/account/webhooks"
    created = api.client.post(base, json={"url": "https://hooks.example.com/a",
                                          "event_types": ["low_balance"],
                                          "description": "pager"}, headers=headers).json()
    one = f"{base}/{created['id']}"
    changed = api.client.patch(one, headers=headers, json={
        "event_types": ["suspended", "low_balance"], "description": "ops", "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["low_balance", "suspended"]
    assert not changed.json()["enabled"]
    assert api.client.patch(one, headers=headers, json={"enabled": False}).status_code == 200
    assert api.client.post(f"{one}/enable", headers=headers).json()["enabled"]
    rotated = api.client.post(f"{one}/rotate-secret", headers=headers).json()
    bad = api.client.patch(one, headers=headers, json={"event_types": ["nope"]})
    assert bad.status_code == 422  # refused: nothing recorded
    assert api.client.delete(one, headers=headers).status_code == 204
    with api.db.transaction() as s:
        rows = s.execute(text(
            "SELECT action, actor_kind, actor_id, target, before, after "
            "FROM hopsplane.audit_log WHERE account_owner_id = :a AND action LIKE 'webhooks.%' "
            "ORDER BY id"), {"a": owner}).all()
    assert [r.action for r in rows] == [
        "webhooks.endpoint_created", "webhooks.endpoint_changed",  # the repeat: no change
        "webhooks.endpoint_changed", "webhooks.secret_rotated", "webhooks.endpoint_deleted"]
    assert {(r.actor_kind, r.actor_id, r.target) for r in rows} == {
        ("person", owner, f"webhook_endpoint:{created['id']}")}
    made, change, enable, rotation, deletion = rows
    assert made.before is None and made.after == {
        "url": "https://hooks.example.com/a", "event_types": ["low_balance"],
        "description": "pager", "enabled": True}
    assert change.before["event_types"] == ["low_balance"] and change.before["enabled"]
    assert change.after == {"url": "https://hooks.example.com/a", "description": "ops",
                            "event_types": ["low_balance", "suspended"], "enabled": False}
    assert (enable.before["enabled"], enable.after["enabled"]) == (False, True)
    assert rotation.before == {"previous_secret_until": None}
    assert rotation.after["previous_secret_until"].startswith(
        rotated["previous_secret_until"][:16])
    assert deletion.before["description"] == "ops" and deletion.after is None
    everything = str([tuple(r) for r in rows])
    assert "whsec_" not in everything and created["secret"] not in everything
    assert rotated["secret"] not in everything


class Dripper:
    """A TLS server (``hooks.test`` on 127.0.0.1) that reads the request, then answers one
    byte a second: each read is answered well within the per-read timeout, so only the
    attempt's total deadline can end the exchange."""

    def __init__(self, ca: Ca) -> None:
        self.context = server_context(ca, host=HOST)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._drip, args=(raw,), daemon=True).start()

    def _drip(self, raw: socket.socket) -> None:
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(5)
                seen = b""
                while b"\r\n\r\n" not in seen:
                    seen += conn.recv(4096)
                for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" + b" " * 60:
                    if self.stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
        except (OSError, ssl.SSLError):
            return  # the sender gave up and closed: what the test wants

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}/hook"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.listener.close()


def test_a_consumer_that_drips_its_answer_is_cut_off_at_the_attempts_deadline(
    fresh_db: Database, box: SecretBox, ca: Ca,
) -> None:
    dripper = Dripper(ca)
    try:
        with fresh_db.transaction() as s:
            a = make_user(s)
        _endpoint(fresh_db, box, a, dripper.url)
        with fresh_db.transaction() as s:
            notices.publish(s, AccountEvent("low_balance", a, f"low:{a}",
                                            {"threshold": "10.00", "balance": "9.00"}))
        # 5 s per read (never reached: a byte comes every second), 2 s in all
        sender = HttpSender(ca_bundle=ca.pem, resolver=lambda host, port: ["127.0.0.1"],
                            open_networks=[ipaddress.ip_network("127.0.0.1/32")],
                            timeout=5.0, deadline=2.0)
        assert _work(fresh_db, box, sender) == 1
        (delivery,) = _deliveries(fresh_db)
        assert delivery.status == "pending" and delivery.attempts == 1  # retried later
        assert delivery.error.startswith(TIMEOUT_PREFIX), delivery.error
        assert "2 s" in delivery.error and delivery.response_status is None
    finally:
        dripper.close()

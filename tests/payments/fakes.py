"""Local servers that speak Stripe's wire protocol, for the real ``stripe`` client.

- localstripe (PyPI) serves customers, payment methods, payment intents, charges and
  refunds.
- ``StripeFront`` is what the client is pointed at: it answers ``/v1/checkout/sessions``
  and ``/v1/disputes`` itself (localstripe has neither Checkout nor disputes) like Stripe
  does, and the invoices Checkout creates (``GET /v1/invoices/{id}``), and forwards every
  other request to localstripe unchanged, except:
  - charges get the ``receipt_url`` that every Stripe charge has and localstripe's lack.
  - Checkout in ``setup`` mode (auto top-up saves a card): :meth:`StripeFront.save_card` is
    the customer completing it: a SetupIntent confirmed with the card on localstripe and the
    PaymentMethod attached to the customer, as Stripe does for a SetupIntent with a
    ``customer`` (https://docs.stripe.com/api/setup_intents/confirm).
  - off-session PaymentIntents (``off_session=true``): created then confirmed on
    localstripe, and answered the way Stripe answers them: a failure is HTTP 402 with a
    ``card_error`` carrying the PaymentIntent (left in ``requires_payment_method``), code
    ``authentication_required`` when the card wants 3-D Secure
    (https://docs.stripe.com/payments/save-and-reuse, "Charge the saved payment method
    later"; https://support.stripe.com/questions/manual-confirmation-for-off-session-payments-requiring-strong-customer-authentication-sca)
    or ``card_declined`` with a ``decline_code``. localstripe instead returns 200 with
    ``requires_action`` and a 402 without the PaymentIntent.
  - ``Idempotency-Key`` on ``POST /v1/payment_intents``: Stripe "saves the resulting status
    code and body of the first request made for any given idempotency key, regardless of
    whether it succeeds or fails" and replays them (https://docs.stripe.com/api/idempotent_requests);
    localstripe ignores the header.
  - ``outage``: while set, payment intent creation answers 503 like an unavailable API.

Test cards (https://docs.stripe.com/testing): ``4242424242424242`` succeeds;
``4000000000000341`` attaches to a customer but every charge is declined; ``4000002760003184``
requires authentication on every payment, even off-session after setup (``4000002500003155``
needs none off-session once set up, so it cannot show the 3-D Secure path here);
``4000000000009995`` (insufficient funds) is declined already when attached.

Disputes follow Stripe's API reference ("The Dispute object", "Retrieve a dispute", "List
all disputes": https://docs.stripe.com/api/disputes): ``dp_`` ids, ``amount`` in minor
units, ``charge`` and ``payment_intent`` ids, ``status`` from ``warning_needs_response``
... ``won``/``lost``, ``balance_transactions`` holding the withdrawal (and, when won, the
reinstatement); a list is ``{"object": "list", "data", "has_more", "url"}``, newest first,
filtered by ``created[gt]`` and paged with ``starting_after``; an unknown id is a 404
``resource_missing``. Events about them are ``charge.dispute.created``, ``.updated``,
``.closed``, ``.funds_withdrawn`` and ``.funds_reinstated``, whose object is the dispute.

Shapes follow Stripe's API reference: a Checkout Session created with
``invoice_creation[enabled]=true`` (payment mode only; Stripe refuses it in other modes)
names the invoice it made in ``invoice`` once paid; that invoice is ``paid``, with
``hosted_invoice_url`` (https://invoice.stripe.com/i/...) and ``invoice_pdf``
(https://pay.stripe.com/invoice/.../pdf); a charge's ``receipt_url`` is its receipt page
(https://pay.stripe.com/receipts/...).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import stripe

WEBHOOK_SECRET = "whsec_test_" + "s3cr3t" * 4
TEST_KEY = "sk_test_hopsplane_local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        runner = Path(__file__).with_name("localstripe_runner.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(runner), str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/v1/customers", auth=(TEST_KEY, ""), timeout=1)
                break
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"localstripe did not start: {err}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class StripeFront:
    """Checkout Sessions like Stripe's API, everything else forwarded to localstripe."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.sessions: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoices_unavailable = False  # a test makes invoice reads answer 503
        self.checkout_requests: list[dict[str, str]] = []
        self.setup_intents: dict[str, dict[str, Any]] = {}  # SetupIntents completed on Checkout
        self.replies: dict[str, tuple[int, bytes]] = {}  # Idempotency-Key -> first answer
        self.intent_requests: list[dict[str, str]] = []  # off-session creations that ran
        self.outage = False
        self.lock = threading.Lock()
        self.http = httpx.Client(base_url=backend, timeout=30)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,  # stops within 0.05 s
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.client = stripe.StripeClient(TEST_KEY, base_addresses={"api": backend})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    # --- what a test does on Stripe's side -------------------------------------------

    def pay(self, session_id: str) -> dict[str, Any]:
        """The buyer pays a Checkout Session with a card: a real PaymentIntent is created
        and confirmed on localstripe, and the session becomes complete and paid."""
        with self.lock:
            cs = self.sessions[session_id]
            if cs["status"] != "open":  # Stripe's page refuses an expired session
                raise RuntimeError(f"checkout session {session_id} is {cs['status']}")
        pm = self.client.v1.payment_methods.create(params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030,
                     "cvc": "123"},
        })
        pi = self.client.v1.payment_intents.create(params={
            "amount": cs["amount_total"], "currency": cs["currency"],
            "customer": cs["customer"], "payment_method": pm.id, "confirm": True,
            "metadata": cs["_pi_metadata"],
        })
        assert pi.status == "succeeded", pi.status
        with self.lock:
            cs.update(payment_intent=pi.id, payment_status="paid", status="complete")
            if cs["_invoice_creation"]:
                iid = "in_test_" + secrets.token_hex(12)
                self.invoices[iid] = {
                    "id": iid, "object": "invoice", "status": "paid",
                    "customer": cs["customer"], "currency": cs["currency"],
                    "amount_due": cs["amount_total"], "amount_paid": cs["amount_total"],
                    "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_test/{iid}",
                    "invoice_pdf": f"https://pay.stripe.com/invoice/acct_test/{iid}/pdf",
                    "livemode": False, "metadata": cs["_invoice_metadata"],
                }
                cs["invoice"] = iid
            return self.public(cs)

    def save_card(self, session_id: str, number: str = "4242424242424242") -> dict[str, Any]:
        """The customer saves a card on a setup-mode Checkout Session (3-D Secure, when the
        card asks for it, is completed on Stripe's page: the SetupIntent succeeds)."""
        with self.lock:
            cs = self.sessions[session_id]
        assert cs["mode"] == "setup"
        pm = self.client.v1.payment_methods.create(params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        })
        si = self.client.v1.setup_intents.create(params={
            "customer": cs["customer"], "usage": "off_session", "metadata": cs["_si_metadata"],
        })
        confirmed = self.client.v1.setup_intents.confirm(
            si.id, params={"payment_method": pm.id}).to_dict()
        self.client.v1.payment_methods.attach(pm.id, params={"customer": cs["customer"]})
        if confirmed["status"] == "requires_action":  # authenticated on Checkout's page
            confirmed.update(status="succeeded", next_action=None)
            with self.lock:
                self.setup_intents[si.id] = confirmed
        with self.lock:
            cs.update(setup_intent=si.id, status="complete", payment_status="no_payment_required")
            return self.public(cs)

    def _off_session(self, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        create = {k: v for k, v in form.items() if k not in ("off_session", "confirm")}
        r = self.http.post("/v1/payment_intents", data=create, headers=headers)
        if r.status_code != 200:
            return r.status_code, r.json()
        pi_id = r.json()["id"]
        self.intent_requests.append(form)
        confirmed = self.http.post(f"/v1/payment_intents/{pi_id}/confirm", headers=headers)
        pi = self.http.get(f"/v1/payment_intents/{pi_id}", headers=headers).json()
        if confirmed.status_code == 200 and pi["status"] != "requires_action":
            return 200, pi
        pi.update(status="requires_payment_method", next_action=None)
        if confirmed.status_code == 200:  # the card asks for 3-D Secure: off-session fails
            error = {"code": "authentication_required", "decline_code": "authentication_required",
                     "message": "Your card was declined. This transaction requires "
                                "authentication.", "type": "card_error"}
        else:
            error = {"code": "card_declined", "decline_code": "generic_decline",
                     "message": "Your card was declined.", "type": "card_error",
                     "charge": confirmed.json().get("error", {}).get("charge")}
        pi["last_payment_error"] = dict(error)
        return 402, {"error": {**error, "payment_intent": pi,
                               "doc_url": f"https://docs.stripe.com/error-codes/{error['code']}"}}

    def refund(self, payment_intent_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund (part of) a payment on localstripe; returns the charge as it is now."""
        params: dict[str, Any] = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        self.client.v1.refunds.create(params=params)  # type: ignore[arg-type]
        return self.charge_of(payment_intent_id)

    def charge_of(self, payment_intent_id: str) -> dict[str, Any]:
        pi = self.client.v1.payment_intents.retrieve(payment_intent_id).to_dict()
        charge_id = pi["latest_charge"]["id"] if isinstance(pi["latest_charge"], dict) else (
            pi["latest_charge"])
        return self.client.v1.charges.retrieve(charge_id).to_dict()

    def dispute(self, payment_intent_id: str, *, amount: int | None = None,
                status: str = "needs_response") -> dict[str, Any]:
        """The cardholder disputes a payment: a dispute of its charge (the whole amount by
        default), with the funds withdrawn unless it is an inquiry (``warning_*``)."""
        charge = self.charge_of(payment_intent_id)
        did = "dp_" + secrets.token_hex(12)
        withdrawn = not status.startswith("warning_")
        dp = {
            "id": did, "object": "dispute", "amount": amount or charge["amount"],
            "balance_transactions": ([{"id": "txn_" + secrets.token_hex(8),
                                       "type": "adjustment"}] if withdrawn else []),
            "charge": charge["id"], "created": int(time.time()),
            "currency": charge["currency"], "evidence": {}, "evidence_details": {},
            "is_charge_refundable": False, "livemode": False, "metadata": {},
            "payment_intent": payment_intent_id, "reason": "fraudulent", "status": status,
        }
        with self.lock:
            self.disputes[did] = dp
            return dict(dp)

    def close_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        """The card network decides: ``won`` (funds reinstated) or ``lost``."""
        assert status in ("won", "lost", "warning_closed"), status
        with self.lock:
            dp = self.disputes[dispute_id]
            dp["status"] = status
            if status == "won":
                dp["balance_transactions"].append(
                    {"id": "txn_" + secrets.token_hex(8), "type": "adjustment"})
            return dict(dp)

    def _list_disputes(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            found = sorted(self.disputes.values(), key=lambda d: (-d["created"], d["id"]))
        if "created[gt]" in query:
            found = [d for d in found if d["created"] > int(query["created[gt]"])]
        after = query.get("starting_after")
        if after:
            ids = [d["id"] for d in found]
            found = found[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", "10"))
        return {"object": "list", "data": found[:limit], "has_more": len(found) > limit,
                "url": "/v1/disputes"}

    @staticmethod
    def public(cs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in cs.items() if not k.startswith("_")}

    # --- the HTTP side ------------------------------------------------------------------

    def _create_session(self, form: dict[str, str]) -> dict[str, Any]:
        self.checkout_requests.append(form)
        invoicing = form.get("invoice_creation[enabled]") == "true"
        if invoicing and form["mode"] != "payment":
            raise _Refused("invoice_creation can only be used in payment mode.")
        sid = "cs_test_" + secrets.token_hex(12)
        setup = form["mode"] == "setup"
        if setup and "line_items[0][price_data][unit_amount]" in form:
            raise ValueError("line_items are not allowed in setup mode")
        unit = 0 if setup else int(form["line_items[0][price_data][unit_amount]"])
        qty = int(form.get("line_items[0][quantity]", "1"))

        def meta(prefix: str) -> dict[str, str]:
            return {k[len(prefix) + 1:-1]: v for k, v in form.items()
                    if k.startswith(prefix + "[")}

        cs = {
            "id": sid, "object": "checkout.session", "mode": form["mode"],
            "url": f"https://checkout.stripe.test/c/pay/{sid}",
            "status": "open", "payment_status": "unpaid", "payment_intent": None,
            "customer": form.get("customer"),
            "client_reference_id": form.get("client_reference_id"),
            "metadata": meta("metadata"), "_pi_metadata": meta("payment_intent_data[metadata]"),
            "_si_metadata": meta("setup_intent_data[metadata]"), "setup_intent": None,
            "amount_total": None if setup else unit * qty,
            "currency": form["currency"] if setup else form[
                "line_items[0][price_data][currency]"],
            "success_url": form["success_url"], "cancel_url": form["cancel_url"],
            "livemode": False, "invoice": None,
            "invoice_creation": {"enabled": invoicing,
                                 "invoice_data": {"metadata": meta("invoice_creation[invoice_data][metadata]")}},
            "_invoice_creation": invoicing,
            "_invoice_metadata": meta("invoice_creation[invoice_data][metadata]"),
        }
        with self.lock:
            self.sessions[sid] = cs
        return self.public(cs)

    def _list_sessions(self, query: dict[str, str]) -> dict[str, Any]:
        """"List all Checkout Sessions" (https://docs.stripe.com/api/checkout/sessions/list):
        filtered by ``customer`` and ``status``, newest first, one page."""
        with self.lock:
            found = [self.public(cs) for cs in reversed(self.sessions.values())
                     if ("customer" not in query or cs["customer"] == query["customer"])
                     and ("status" not in query or cs["status"] == query["status"])]
        return {"object": "list", "data": found, "has_more": False,
                "url": "/v1/checkout/sessions"}

    def _expire(self, sid: str) -> tuple[int, dict[str, Any]]:
        """"Expire a Checkout Session" (https://docs.stripe.com/api/checkout/sessions/expire):
        only an ``open`` session can be expired; it becomes ``expired`` and can no longer
        be paid."""
        with self.lock:
            cs = self.sessions.get(sid)
            if cs is None:
                return 404, {"error": {"type": "invalid_request_error",
                                       "message": f"No such checkout.session: '{sid}'"}}
            if cs["status"] != "open":
                return 400, {"error": {"type": "invalid_request_error", "message": (
                    "Only Checkout Sessions with a status in [\"open\"] can be expired. "
                    f"This Checkout Session has a status of \"{cs['status']}\".")}}
            cs["status"] = "expired"
            return 200, self.public(cs)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Request-Id", "req_" + secrets.token_hex(6))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj: Any) -> None:
                self._send(status, json.dumps(obj).encode())

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _checkout(self, method: str) -> bool:
                path = self.path.split("?")[0]
                if not path.startswith("/v1/checkout/sessions"):
                    return False
                if not self.headers.get("Authorization", "").startswith("Bearer sk_test_"):
                    self._json(401, {"error": {"type": "invalid_request_error",
                                               "message": "Invalid API Key provided"}})
                    return True
                if method == "POST" and path == "/v1/checkout/sessions":
                    form = dict(parse_qsl(self._body().decode(), keep_blank_values=True))
                    try:
                        created = front._create_session(form)
                    except _Refused as exc:  # what Stripe itself refuses, in its words
                        self._json(400, {"error": {"type": "invalid_request_error",
                                                   "message": str(exc)}})
                        return True
                    except (KeyError, ValueError) as exc:
                        self._json(400, {"error": {"type": "invalid_request_error",
                                                   "message": f"Invalid request: {exc}"}})
                        return True
                    self._json(200, created)
                    return True
                if method == "GET" and path == "/v1/checkout/sessions":
                    self._json(200, front._list_sessions(dict(parse_qsl(
                        self.path.partition("?")[2]))))
                    return True
                if method == "POST" and path.endswith("/expire"):
                    self._body()
                    code, answer = front._expire(path.split("/")[-2])
                    self._json(code, answer)
                    return True
                sid = path.rsplit("/", 1)[-1]
                with front.lock:
                    cs = front.sessions.get(sid)
                if method == "GET" and cs is not None:
                    self._json(200, front.public(cs))
                else:
                    self._json(404, {"error": {"type": "invalid_request_error",
                                               "message": f"No such checkout.session: '{sid}'"}})
                return True

            def _disputes(self, method: str) -> bool:
                path, _, query = self.path.partition("?")
                if not path.startswith("/v1/disputes"):
                    return False
                if not self.headers.get("Authorization", "").startswith("Bearer sk_test_"):
                    self._json(401, {"error": {"type": "invalid_request_error",
                                               "message": "Invalid API Key provided"}})
                    return True
                if method == "GET" and path == "/v1/disputes":
                    self._json(200, front._list_disputes(dict(parse_qsl(query))))
                    return True
                did = path.rsplit("/", 1)[-1]
                with front.lock:
                    dp = front.disputes.get(did)
                if method == "GET" and dp is not None:
                    self._json(200, dict(dp))
                else:
                    self._json(404, {"error": {"type": "invalid_request_error",
                                               "code": "resource_missing", "param": "id",
                                               "message": f"No such dispute: '{did}'"}})
                return True

            def _invoice(self) -> bool:
                path = self.path.split("?")[0]
                if not path.startswith("/v1/invoices/"):
                    return False
                iid = path.rsplit("/", 1)[-1]
                with front.lock:
                    invoice = front.invoices.get(iid)
                    down = front.invoices_unavailable
                if down:
                    self._json(503, {"error": {"type": "api_error",
                                               "message": "Stripe is unavailable"}})
                elif invoice is None:
                    self._json(404, {"error": {"type": "invalid_request_error",
                                               "message": f"No such invoice: '{iid}'"}})
                else:
                    self._json(200, invoice)
                return True

            def _forward(self, method: str) -> None:
                body = self._body() if method in ("POST", "DELETE") else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type")}
                r = front.http.request(method, self.path, content=body, headers=headers)
                content = r.content
                if r.status_code == 200 and self.path.startswith("/v1/charges"):
                    content = json.dumps(_with_receipt_urls(r.json())).encode()
                self._send(r.status_code, content, r.headers.get("content-type", "json"))

            def _intents(self, method: str) -> bool:
                path = self.path.split("?")[0]
                if method == "GET" and path.startswith("/v1/setup_intents/"):
                    with front.lock:
                        found = front.setup_intents.get(path.rsplit("/", 1)[-1])
                    if found is not None:
                        self._json(200, found)
                        return True
                    return False
                if method != "POST" or path != "/v1/payment_intents":
                    return False
                body = self._body()
                form = dict(parse_qsl(body.decode(), keep_blank_values=True))
                key = self.headers.get("Idempotency-Key")
                with front.lock:
                    replay = front.replies.get(key) if key else None
                if replay is not None:
                    self._send(replay[0], replay[1])
                    return True
                if front.outage:
                    self._json(503, {"error": {"type": "api_error",
                                               "message": "Stripe is unavailable (test)"}})
                    return True
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization",)}
                if form.get("off_session") == "true":
                    status, answer = front._off_session(form, headers)
                else:
                    r = front.http.post("/v1/payment_intents", content=body, headers={
                        **headers, "Content-Type": "application/x-www-form-urlencoded"})
                    status, answer = r.status_code, r.json()
                raw = json.dumps(answer).encode()
                if key:
                    with front.lock:
                        status, raw = front.replies.setdefault(key, (status, raw))
                self._send(status, raw)
                return True

            def do_GET(self) -> None:
                if (not self._checkout("GET") and not self._disputes("GET")
                        and not self._intents("GET") and not self._invoice()):
                    self._forward("GET")

            def do_POST(self) -> None:
                if not self._checkout("POST") and not self._intents("POST"):
                    self._forward("POST")

            def do_DELETE(self) -> None:
                self._forward("DELETE")

        return Handler


class _Refused(Exception):
    """A request Stripe answers with 400 invalid_request_error."""


def _with_receipt_urls(body: Any) -> Any:
    """A charge (or a list of charges) with the ``receipt_url`` Stripe gives every charge."""
    if isinstance(body, dict) and body.get("object") == "list":
        body["data"] = [_with_receipt_urls(c) for c in body.get("data", [])]
    elif isinstance(body, dict) and body.get("object") == "charge":
        body.setdefault("receipt_url", f"https://pay.stripe.com/receipts/payment/{body['id']}")
    return body


def stripe_event(
    type_: str, obj: dict[str, Any], *, livemode: bool = False, event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": created if created is not None else int(time.time()),
        "livemode": livemode,
        "pending_webhooks": 1,
        "type": type_,
        "data": {"object": obj},
    }


def sign(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET,
         timestamp: int | None = None) -> tuple[bytes, str]:
    """The body and the Stripe-Signature header exactly as Stripe sends them."""
    payload = json.dumps(event, indent=2)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
    return payload.encode(), header

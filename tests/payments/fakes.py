"""Local servers that speak Stripe's wire protocol, for the real ``stripe`` client.

- localstripe (PyPI) serves customers, payment methods, payment intents, charges and
  refunds.
- ``StripeFront`` is what the client is pointed at: it answers ``/v1/checkout/sessions``
  and ``/v1/disputes`` itself (localstripe has neither Checkout nor disputes) like Stripe
  does, and forwards every other request to localstripe unchanged.

Disputes follow Stripe's API reference ("The Dispute object", "Retrieve a dispute", "List
all disputes": https://docs.stripe.com/api/disputes): ``dp_`` ids, ``amount`` in minor
units, ``charge`` and ``payment_intent`` ids, ``status`` from ``warning_needs_response``
... ``won``/``lost``, ``balance_transactions`` holding the withdrawal (and, when won, the
reinstatement); a list is ``{"object": "list", "data", "has_more", "url"}``, newest first,
filtered by ``created[gt]`` and paged with ``starting_after``; an unknown id is a 404
``resource_missing``. Events about them are ``charge.dispute.created``, ``.updated``,
``.closed``, ``.funds_withdrawn`` and ``.funds_reinstated``, whose object is the dispute.
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
        self.checkout_requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.http = httpx.Client(base_url=backend, timeout=30)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
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
            return self.public(cs)

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
        sid = "cs_test_" + secrets.token_hex(12)
        unit = int(form["line_items[0][price_data][unit_amount]"])
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
            "amount_total": unit * qty, "currency": form["line_items[0][price_data][currency]"],
            "success_url": form["success_url"], "cancel_url": form["cancel_url"],
            "livemode": False,
        }
        with self.lock:
            self.sessions[sid] = cs
        return self.public(cs)

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
                    self._json(200, front._create_session(form))
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

            def _forward(self, method: str) -> None:
                body = self._body() if method in ("POST", "DELETE") else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type")}
                r = front.http.request(method, self.path, content=body, headers=headers)
                self._send(r.status_code, r.content, r.headers.get("content-type", "json"))

            def do_GET(self) -> None:
                if not self._checkout("GET") and not self._disputes("GET"):
                    self._forward("GET")

            def do_POST(self) -> None:
                if not self._checkout("POST"):
                    self._forward("POST")

            def do_DELETE(self) -> None:
                self._forward("DELETE")

        return Handler


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

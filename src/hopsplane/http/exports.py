"""CSV exports of usage and of the ledger, one implementation for the API and the console
(same filters, same numbers: the rows come from the services the JSON routes call).

The usage export has one row per day and member, named (never by id) and priced as the
usage chart names and prices them, so each day's rows add up to the day's cost. Money and
units are the stored decimals, written as they are (never through a float).

How an export is answered: the route checks the caller and the filters in its own request
(so a refusal is an ordinary 4xx before any byte is sent). Then, after the request's own
transaction has ended, the whole file is written to a spooled temporary file (memory up to
1 MiB, then disk) from one REPEATABLE READ transaction of its own, read in chunks (31 days
of usage, 500 ledger entries): one consistent snapshot, never a year of a large account in
memory. Only then is the header sent, with the file's Content-Length. So

- a client that reads slowly (or never) holds no database connection and no place among
  the requests in flight, only the spooled file;
- a database that fails while the file is written is an ordinary 503 with Retry-After,
  never a 200 that ends cleanly while truncated (and should the connection break while the
  body is sent, the Content-Length tells the client its copy is short)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import quote

import anyio
from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from hopsplane.accounts import service as accounts
from hopsplane.audit import service as audit
from hopsplane.audit.schemas import CSV_COLUMNS as AUDIT_COLUMNS
from hopsplane.billing import service as billing
from hopsplane.billing.rules import NOBODY_LABEL, cost_parts
from hopsplane.billing.schemas import UsageDay
from hopsplane.credits import service as credits
from hopsplane.db.engine import Database
from hopsplane.errors import Invalid
from hopsplane.http import wording
from hopsplane.usage.rules import UNITS_PER_CPU_HOUR

USAGE_CHUNK_DAYS = 31
LEDGER_CHUNK = 500
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
SEND_CHUNK_BYTES = 64 * 1024
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9998, 12, 31)
"""Exports cover days in this range: a day beyond it is refused (422) rather than
overflowing the calendar while the file is written."""
EXPORT_DAY: dict[str, object] = {"pattern": (
    "^(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    "-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"
)}
"""FIRST_DAY to LAST_DAY as the OpenAPI pattern of a `format: date` parameter."""
USAGE_COLUMNS = ("date", "member", "compute_units", "cpu_hours", "unit_price", "cost")
LEDGER_COLUMNS = ("seq", "created_at", "type", "amount", "balance", "description")
"""The ledger as its customer reads it: the description in plain words
(:mod:`hopsplane.http.wording`), no internal or Stripe id."""


def check_usage_range(session: Session, account_id: str, first: date, last: date) -> None:
    """Refuse what :func:`billing.usage_report` would refuse, before streaming starts."""
    for day in (first, last):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise Invalid(f"dates must be between {FIRST_DAY} and {LAST_DAY}, got {day}")
    if last < first:
        raise Invalid("`to` must not be before `from`")
    if (last - first).days >= billing.MAX_USAGE_DAYS:
        raise Invalid(f"at most {billing.MAX_USAGE_DAYS} days per request")
    credits.require_owner(session, account_id)


def _lines(header: Iterable[str], rows: Iterator[Iterable[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if v is None else _safe(str(v)) for v in row])
        yield buffer.getvalue()


def _safe(value: str) -> str:
    """A cell a spreadsheet would run as a formula starts with a quote (CSV injection);
    numbers (a minus sign and digits) are left as they are."""
    if value[:1] in ("=", "+", "@", "\t", "\r") or (
            value[:1] == "-" and not value[1:].replace(".", "", 1).isdigit()):
        return "'" + value
    return value


@contextmanager
def _snapshot(db: Database) -> Iterator[Session]:
    """A transaction of the export's own that reads one snapshot (REPEATABLE READ), so
    rows read in chunks add up to what was there when the export began."""
    with db.transaction() as session:
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        yield session


def _usage_rows(db: Database, account_id: str, first: date, last: date,
                members: frozenset[str] | None) -> Iterator[list[object]]:
    with _snapshot(db) as session:
        start = first
        while start <= last:
            end = start + timedelta(days=min(USAGE_CHUNK_DAYS - 1, (last - start).days))
            report = billing.usage_report(session, account_id, start, end, members=members)
            people = accounts.people_of(
                session, account_id, [u for d in report.days for u in d.user_breakdown])
            for d in report.days:
                yield from _member_rows(d, people)
            start = end + timedelta(days=1)


def _member_rows(day: UsageDay, people: dict[str, str]) -> Iterator[list[object]]:
    """One row per member of the day, named as the chart names them (usage of nobody
    known under one label, last), costs split as the chart splits them (they add up to
    the day's cost)."""
    units: dict[str, Decimal] = {}
    costs: dict[str, Decimal] = {}
    for uid, cost in cost_parts(day.user_breakdown, day.unit_price, day.total_cost).items():
        label = people.get(uid, NOBODY_LABEL)
        used = day.user_breakdown.get(uid, day.compute_units if uid == "" else Decimal(0))
        units[label] = units.get(label, Decimal(0)) + used
        costs[label] = costs.get(label, Decimal(0)) + cost
    for label in sorted(costs, key=lambda n: (n == NOBODY_LABEL, n)):
        yield [day.date.isoformat(), label, units[label], units[label] / UNITS_PER_CPU_HOUR,
               day.unit_price, costs[label]]


def _ledger_rows(db: Database, account_id: str, currency: str) -> Iterator[list[object]]:
    with _snapshot(db) as session:
        before: int | None = None
        while True:
            entries = credits.history(session, account_id, limit=LEDGER_CHUNK, before_seq=before)
            for e in entries:
                yield [e.seq, e.created_at.isoformat(), e.type.value, e.amount, e.balance,
                       wording.describe(e.type, e.description, currency)]
            if len(entries) < LEDGER_CHUNK:
                return
            before = entries[-1].seq


class MaterialisedCSV(Response):
    """A CSV answer written whole (in a worker thread, in its own transaction) before its
    header is sent, then sent from the spooled file; see the module's docstring."""

    media_type = "text/csv; charset=utf-8"

    def __init__(self, lines: Callable[[], Iterator[str]], filename: str) -> None:
        super().__init__(media_type=self.media_type, headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        })
        self._lines = lines

    def _write(self) -> tuple[tempfile.SpooledTemporaryFile[bytes], int]:
        spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY_BYTES)
        size = 0
        try:
            for line in self._lines():
                data = line.encode()
                spool.write(data)
                size += len(data)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool, size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spool, size = await anyio.to_thread.run_sync(self._write)
        try:
            self.headers["content-length"] = str(size)
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            while True:
                chunk = await anyio.to_thread.run_sync(spool.read, SEND_CHUNK_BYTES)
                more = spool.tell() < size
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
        finally:
            spool.close()


def _csv(header: Iterable[str], rows: Callable[[], Iterator[Iterable[object]]],
         filename: str) -> MaterialisedCSV:
    return MaterialisedCSV(lambda: _lines(header, rows()), filename)


def usage_csv(request: Request, account_id: str, first: date, last: date,
              members: frozenset[str] | None, name: str = "usage") -> MaterialisedCSV:
    """Daily usage of the account by member (``members``: those people's share: a member's
    own, an organization's), oldest day first, one row per day and member."""
    db: Database = request.app.state.database
    return _csv(USAGE_COLUMNS, lambda: _usage_rows(db, account_id, first, last, members),
                f"{name}-{first}-{last}.csv")


def ledger_csv(request: Request, account_id: str) -> MaterialisedCSV:
    """Every ledger entry of the account, newest first (as the ledger pages)."""
    db: Database = request.app.state.database
    currency = request.app.state.settings.stripe_currency
    return _csv(LEDGER_COLUMNS, lambda: _ledger_rows(db, account_id, currency), "ledger.csv")


def _audit_rows(db: Database, account_id: str | None,
                filters: dict[str, object]) -> Iterator[list[object]]:
    with _snapshot(db) as session:
        for e in audit.all_entries(session, account_id=account_id, **filters):  # type: ignore[arg-type]
            yield [e.id, e.occurred_at.isoformat(), e.actor_kind, e.actor_id, e.action,
                   e.account_owner_id, e.target,
                   None if e.before is None else json.dumps(e.before, sort_keys=True),
                   None if e.after is None else json.dumps(e.after, sort_keys=True),
                   e.source, e.request_id]


def audit_csv(request: Request, account_id: str | None,
              filters: dict[str, object]) -> MaterialisedCSV:
    """The audit log of the account (None: every account), newest first, with the filters
    of the JSON route; before and after as JSON text."""
    db: Database = request.app.state.database
    return _csv(AUDIT_COLUMNS, lambda: _audit_rows(db, account_id, filters), "audit.csv")

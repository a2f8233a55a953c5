"""Group commit for usage batches: the batches one process receives at the same time are
stored and folded together, in one transaction.

Why: folding is serialised (one transaction at a time holds the fold lock, see
:mod:`hopsplane.usage.repository`), and its cost is per (account, day) row rewritten, not
per event. Batches that wait for the lock anyway are taken together by the next fold:
rows that several of them touch are rewritten once, and the fixed cost of a transaction
(temporary tables, statistics, commit) is paid once. One batch alone goes through the same
path on its own, with no added wait: a batch never waits for a timer, only for the fold
that is running when it arrives.

How: a batch that arrives while no group is running leads: it takes every queued batch
(its own first) up to :data:`MAX_GROUP_EVENTS`, runs them in one transaction, hands each
its result, and passes the lead to the oldest batch still queued. Validation is done by
each request before it queues (a bad batch is refused alone and never joins a group). If
the group's transaction fails, each batch of it is run again alone, in its own
transaction, so a failure only reaches the batch that causes it. A repeated id across the
batches of a group is new in the batch queued first, and a duplicate in the others, as
if they had come one after the other.

This is an edge (like the worker's :func:`hopsplane.usage.service.collect_all`): it opens
the transactions itself. The API uses it; the CLI and the collector call the service
with their own transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hopsplane.db.engine import Database
from hopsplane.usage import repository as repo
from hopsplane.usage.schemas import NewEvent

MAX_GROUP_EVENTS = 20_000
"""At most this many events (whole batches) in one group; a bigger batch runs alone."""


@dataclass(slots=True)
class _Ticket:
    rows: list[NewEvent]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: tuple[int, int, int] | None = None
    error: BaseException | None = None


class BatchCombiner:
    """Stores and folds concurrent batches of one process together (see the module)."""

    def __init__(self, database: Callable[[], Database], *,
                 max_group_events: int = MAX_GROUP_EVENTS) -> None:
        self._database = database
        self._max = max_group_events
        self._mutex = threading.Lock()
        self._queue: list[_Ticket] = []
        self._running = False

    def ingest(self, rows: list[NewEvent]) -> tuple[int, int, int]:
        """(accepted, unmatched, days changed) of one validated batch, once it is stored
        and folded (committed)."""
        ticket = _Ticket(rows)
        with self._mutex:
            self._queue.append(ticket)
            if not self._running:
                self._running = True
                ticket.lead = True
        if not ticket.lead:
            ticket.done.wait()
        if ticket.lead:  # arrived first, or handed the lead by the previous group
            self._lead()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.result is not None
        return ticket.result

    def _lead(self) -> None:
        with self._mutex:
            group: list[_Ticket] = []
            size = 0
            while self._queue and (not group or size + len(self._queue[0].rows) <= self._max):
                group.append(self._queue.pop(0))
                size += len(group[-1].rows)
        try:
            self._run(group)
        finally:
            with self._mutex:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._running = False
            for ticket in group:
                if ticket.result is None and ticket.error is None:
                    ticket.error = RuntimeError("usage batch was not processed")
                ticket.lead = False
                ticket.done.set()

    def _run(self, group: list[_Ticket]) -> None:
        database = self._database()
        try:
            with database.transaction() as session:
                results = repo.ingest_batches(session, [t.rows for t in group])
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for ticket in group:  # again one by one: the failure stays with its batch
                try:
                    with database.transaction() as session:
                        ticket.result = repo.ingest_batches(session, [ticket.rows])[0]
                except Exception as alone:
                    ticket.error = alone
            return
        for ticket, result in zip(group, results, strict=True):
            ticket.result = result

"""How `hopsplane serve` runs uvicorn: the HTTP protocol with a header deadline, and the
server options that go with it.

uvicorn times out only an idle keep-alive connection, and any byte received cancels that
timer; a connection that is opened and then sends its header one byte every few seconds
(or nothing at all) is kept forever. Here every connection must complete a request's header
block within ``HOPSPLANE_WEB_HEADER_TIMEOUT_SECONDS`` of opening, or of its previous
answer; the body has its own deadline in the serving middleware (hopsplane.api.serving)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # uvicorn[standard]

HEADER_TIMEOUT_ENV = "HOPSPLANE_WEB_HEADER_TIMEOUT_SECONDS"
DEFAULT_HEADER_TIMEOUT = 10.0



def _header_timeout() -> float:
    # Read from the environment, not Settings: uvicorn builds the protocol itself, in every
    # worker process, with no way to hand it our settings object.
    try:
        value = float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT
    return value if value > 0 else DEFAULT_HEADER_TIMEOUT


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request header does
    not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_seconds = _header_timeout()
        self._cycles: list[Any] = []

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(
            self._header_seconds, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        # uvicorn marks only the newest request of the connection as disconnected; with
        # pipelined requests the one being answered is older, and its send (waiting on a
        # slow reader) would go on to write to the closed transport. Mark them all.
        for cycle in self._cycles:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._cycles.clear()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()
        self._cycles = [c for c in self._cycles if not c.response_complete]
        if self.cycle is not None:
            self._cycles.append(self.cycle)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_header_deadline()  # the next request's header, if any


def uvicorn_options(header_timeout: float) -> dict[str, Any]:
    """Options of uvicorn.run for `hopsplane serve` (the header timeout is passed on to
    the worker processes through the environment)."""
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    options: dict[str, Any] = {
        "log_config": None,
        "proxy_headers": True,
        "access_log": False,  # the app logs each request itself
        "timeout_keep_alive": 5,
    }
    options["http"] = HeaderDeadlineProtocol
    return options

"""A real uvicorn server for an app, on a free 127.0.0.1 port, in a thread of the test; and
a raw HTTP/1.1 keep-alive connection to talk to it (to see whether the server closed it)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any, **config: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port (``config``: more uvicorn
    options) in a thread; yields the port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                       **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def wait_until_ready(
    url: str, deadline_s: float, process: Any = None, what: str = "the server"
) -> None:
    """Poll ``url`` until it answers 200; fail when ``process`` (a Popen) exits or the
    deadline passes first."""
    import httpx

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not become ready at {url}")
        time.sleep(0.2)


class KeepAlive:
    """One TCP connection, requests sent one after the other on it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body). Raises ConnectionError when the server closed it."""
        lines = [f"{method} {path} HTTP/1.1", "Host: test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            found[k.strip().lower()] = v.strip()
        length = int(found.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), found, payload

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

"""The processes of `hopsplane serve`: is the port free (and if not, who holds it), which
server workers outlived their parent, and the pact that makes a worker die with it.

A worker of `serve --workers N` is a separate process that holds the listening socket.
When the parent is killed with SIGKILL it cannot stop them, and they would go on
answering on the port with nobody to replace or stop them. Each worker therefore asks the
kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and also watches its
parent pid (every other system, and the window before the request is made).

Linux only finds the holders of a port (through /proc); elsewhere the message names the
port without pids.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WORKER_OF_ENV = "HOPSPLANE_SERVE_WORKER_OF"
"""Set by `serve` for its worker processes (they inherit it): "<parent pid> <port> <host>".
It is how a later `serve` recognises a worker left behind, and how a worker knows which
parent to die with. Not a setting."""

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0
"""How long a worker whose parent is gone may finish its requests before it exits hard."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeWorker:
    """A process started by `hopsplane serve` for a port."""

    pid: int
    parent_pid: int
    port: int
    host: str

    @property
    def orphaned(self) -> bool:
        """Its `serve` is gone: the process was re-parented (to pid 1 or a subreaper)."""
        return _ppid(self.pid) != self.parent_pid or not _alive(self.parent_pid)


def worker_marker(parent_pid: int, port: int, host: str) -> str:
    return f"{parent_pid} {port} {host}"


def parse_marker(value: str) -> tuple[int, int, str] | None:
    parts = value.split(" ", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def _pids() -> list[int]:
    try:
        return sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    except OSError:
        return []


def serve_workers() -> list[ServeWorker]:
    """Every `serve` worker process of this user that is still running."""
    found = []
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        marker = _environ(pid).get(WORKER_OF_ENV)
        parsed = parse_marker(marker) if marker else None
        if parsed is not None:
            found.append(ServeWorker(pid, *parsed))
    return found


def orphaned_workers(port: int | None = None) -> list[ServeWorker]:
    """Workers whose `serve` is gone (on ``port``, or on any port)."""
    return [w for w in serve_workers() if w.orphaned and (port is None or w.port == port)]


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                inodes.add(fields[9])
    return inodes


def listeners(port: int) -> list[int]:
    """Pids holding a listening TCP socket on ``port`` (those this user may inspect)."""
    inodes = {f"socket:[{i}]" for i in _listening_inodes(port)}
    if not inodes:
        return []
    found = []
    for pid in _pids():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    return (text[:100] + "...") if len(text) > 100 else (text or "?")


def _pid_list(pids: list[int]) -> str:
    return ", ".join(str(p) for p in pids)


def port_problem(host: str, port: int) -> str | None:
    """Why `serve` cannot listen on host:port, as a message that says what to do; None
    when it can. Binds and releases a socket the way uvicorn does (SO_REUSEADDR, so a
    closed connection in TIME_WAIT is no obstacle); touches nothing else."""
    orphans = orphaned_workers(port)
    if orphans:
        pids = [w.pid for w in orphans]
        parents = sorted({w.parent_pid for w in orphans})
        return (
            f"port {port} is held by server processes left behind by a `hopsplane serve` "
            f"that is gone (parent pid {_pid_list(parents)}): pid {_pid_list(pids)}. They "
            f"answer on the port with nobody to stop them. Stop them with "
            f"`kill {' '.join(map(str, pids))}`, then start again."
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: the host is unknown ({exc.strerror}). " \
               "Set --host or HOPSPLANE_HOST to an address of this machine, e.g. 127.0.0.1."
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        return _bind_problem(host, port, exc)
    finally:
        sock.close()
    return None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        holders = listeners(port)
        if not holders:
            who = "by another program (one this user cannot inspect)"
        else:
            named = "; ".join(f"pid {p}: {_command(p)}" for p in holders)
            who = f"by {named}"
        return (f"port {port} is already in use {who}. Stop it, or choose another port "
                f"with --port or HOPSPLANE_PORT (asked for {where}).")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"not allowed to listen on {where} (ports below 1024 need privileges): "
                "choose a port above 1023 with --port or HOPSPLANE_PORT.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {where}: {host} is not an address of this machine. "
                "Set --host or HOPSPLANE_HOST (0.0.0.0 for every interface).")
    return f"cannot listen on {where}: {exc.strerror or exc}."


def die_with_parent(parent_pid: int) -> None:
    """Make this process (a server worker) stop when ``parent_pid`` dies, however it
    dies: the kernel sends SIGTERM (Linux), and a watcher thread notices the new parent
    (everywhere, and in the moment before the kernel was asked), sends SIGTERM itself and,
    when the graceful stop takes longer than STOP_GRACE_SECONDS, exits hard."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watcher alone
            log.debug("prctl unavailable; watching the parent pid only")
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="hopsplane-parent-watch", daemon=True
    ).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_SECONDS)
    log.warning("the `hopsplane serve` process %s is gone; this server process stops",
                parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful stop
    time.sleep(STOP_GRACE_SECONDS)
    os._exit(1)

"""A three-node Patroni cluster (PostgreSQL from Debian, Patroni from PyPI, one etcd) and an
HAProxy in front of it, on 127.0.0.1 ports of their own, for the failover tests.

PostgreSQL refuses to run as root, so Patroni runs as the ``postgres`` user from a virtual
environment that user can execute (``HOPSPLANE_PATRONI_VENV``, default
/opt/hopsplane-patroni, built from Debian's python3: a venv under root's home is not
readable by ``postgres``, and Debian's python3 with its system site-packages imports an
old pyOpenSSL next to the venv's cryptography and crashes). The system PostgreSQL on 5432
is never touched: ports, data directories and sockets are the cluster's own.

Every process is started in a process group of its own and killed by group (and each
postmaster by the pid in its postmaster.pid) when the cluster stops, also when a test
fails or the interpreter exits."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PATRONI_VENV = Path(os.environ.get("HOPSPLANE_PATRONI_VENV", "/opt/hopsplane-patroni"))
PATRONI_REQUIREMENT = ["patroni[etcd3,psycopg3]>=4,<5", "psycopg[binary]"]
SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else None


def _apt_install(*packages: str) -> None:
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], env=env,
                   capture_output=True, timeout=600, check=True)


def ensure_tools(*, haproxy: bool = True) -> str | None:
    """Install what is missing (Debian's etcd-server and haproxy, Patroni into its venv);
    the reason the cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "the failover tests run PostgreSQL as the postgres user: they need root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user (Debian's postgresql package makes it)"
    if pg_bin_dir() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    try:
        if shutil.which("etcd") is None:
            _apt_install("etcd-server")
        if haproxy and shutil.which("haproxy") is None:
            _apt_install("haproxy")
    except (subprocess.SubprocessError, OSError) as exc:
        return f"cannot install etcd-server/haproxy: {exc}"
    if not (PATRONI_VENV / "bin" / "patroni").exists():
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
        try:
            subprocess.run([python, "-m", "venv", str(PATRONI_VENV)], check=True,
                           capture_output=True, timeout=120)
            subprocess.run([str(PATRONI_VENV / "bin" / "pip"), "install", "-q",
                            *PATRONI_REQUIREMENT], check=True, capture_output=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as exc:
            return f"cannot install Patroni into {PATRONI_VENV}: {exc}"
    probe = subprocess.run(["runuser", "-u", "postgres", "--",
                            str(PATRONI_VENV / "bin" / "patroni"), "--version"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"the postgres user cannot run Patroni: {probe.stderr[-300:]}"
    return None


@dataclass
class Node:
    name: str
    pg_port: int
    rest_port: int
    data_dir: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    def postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid while that process is still this node's postmaster
        (a stale file after a kill -9 may name a pid since reused by someone else)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.data_dir).encode() in cmdline else None


@dataclass
class Cluster:
    log_dir: Path
    synchronous: bool = True
    base: Path = field(default_factory=lambda: Path(
        tempfile.mkdtemp(prefix="hopsplane-patroni-", dir="/tmp")))
    nodes: list[Node] = field(default_factory=list)
    etcd: subprocess.Popen[bytes] | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    haproxy_port: int = 0
    etcd_port: int = 0

    def __post_init__(self) -> None:
        pw = pwd.getpwnam("postgres")
        os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self.base.chmod(0o755)
        self.scope = "hopsplane-" + self.base.name.rsplit("-", 1)[-1]
        for i in range(3):
            node = Node(f"pg{i}", free_port(), free_port(), self.base / f"pg{i}",
                        self.base / f"pg{i}.yml")
            self.nodes.append(node)
        atexit.register(self.stop)

    # --- connecting -------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The libpq multi-host URL of the primary, as an operator would configure it."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://{SUPERUSER}@{hosts}/{database}?target_session_attrs=read-write"

    def haproxy_url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.haproxy_port}/{database}"

    # --- life cycle -------------------------------------------------------------------

    def start(self, *, with_haproxy: bool = True) -> None:
        self._start_etcd()
        for node in self.nodes:
            self._write_config(node)
        self.start_node(self.nodes[0])
        self.wait(lambda: self.leader() is not None, 90, "the first node to become leader")
        for node in self.nodes[1:]:
            self.start_node(node)
        self.wait(self.healthy, 120, "three members streaming")
        if with_haproxy and shutil.which("haproxy"):
            self._start_haproxy()

    def _log(self, name: str) -> Any:
        return (self.log_dir / f"{name}.log").open("ab")

    def _start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        data = self.base / "etcd"
        with self._log("etcd") as log:
            self.etcd = subprocess.Popen(
                ["etcd", "--name", "etcd0", "--data-dir", str(data),
                 "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                 "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"etcd0=http://127.0.0.1:{peer}",
                 "--log-level", "warn"],
                stdout=log, stderr=log, start_new_session=True)

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.etcd_port}/health",
                                 timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait(up, 30, "etcd")

    def _write_config(self, node: Node) -> None:
        bin_dir = pg_bin_dir()
        config = {
            "scope": self.scope,
            "namespace": "/hopsplane-failover/",
            "name": node.name,
            "restapi": {"listen": f"127.0.0.1:{node.rest_port}",
                        "connect_address": f"127.0.0.1:{node.rest_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    # Patroni's floor for the leader key's TTL is 20 s: that, not this
                    # test, is what bounds the time to a new primary after a crash.
                    "ttl": 20, "loop_wait": 2, "retry_timeout": 3,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": self.synchronous,
                    "postgresql": {
                        "use_pg_rewind": True, "use_slots": True,
                        "parameters": {
                            "wal_log_hints": "on", "shared_buffers": "64MB",
                            "max_connections": 100, "max_wal_senders": 10,
                            "max_replication_slots": 10, "wal_keep_size": "128MB",
                            "hot_standby": "on", "synchronous_commit": "on",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(bin_dir),
                "pgpass": str(self.base / f"{node.name}.pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER, "password": "failover-su"},
                    "replication": {"username": "replicator", "password": "failover-rep"},
                    "rewind": {"username": "rewinder", "password": "failover-rewind"},
                },
                "parameters": {"unix_socket_directories": str(self.base),
                               "max_connections": 100},
                "pg_hba": ["local all all trust", "host all all 127.0.0.1/32 trust",
                           "host replication all 127.0.0.1/32 trust"],
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }
        node.config.write_text(json.dumps(config, indent=1))  # JSON is YAML
        pw = pwd.getpwnam("postgres")
        os.chown(node.config, pw.pw_uid, pw.pw_gid)

    def start_node(self, node: Node) -> None:
        with self._log(node.name) as log:
            node.proc = subprocess.Popen(
                ["runuser", "-u", "postgres", "--", str(PATRONI_VENV / "bin" / "patroni"),
                 str(node.config)],
                stdout=log, stderr=log, start_new_session=True, cwd=self.base)

    def _start_haproxy(self) -> None:
        self.haproxy_port = free_port()
        servers = "\n".join(
            f"  server {n.name} 127.0.0.1:{n.pg_port} check port {n.rest_port}"
            for n in self.nodes)
        config = self.base / "haproxy.cfg"
        # The documented Patroni pattern (docs/scaling.md): a TCP proxy whose health check
        # is Patroni's REST /primary (200 on the leader only), and sessions to a server
        # that is marked down are cut, so no client stays on a demoted primary. No
        # retries: HAProxy waits a second before each, so with its default of 3 every
        # connection made in the 2 s before the dead primary is marked down hung for 3 s
        # (measured) while the request held one of the server's in-flight slots; refused
        # at once, the request is a 503 and the client retries.
        config.write_text(f"""global
  maxconn 500
defaults
  mode tcp
  retries 0
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 2s
listen primary
  bind 127.0.0.1:{self.haproxy_port}
  option httpchk GET /primary
  http-check expect status 200
  default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
""")
        with self._log("haproxy") as log:
            self.haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(config)],
                                            stdout=log, stderr=log, start_new_session=True)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.haproxy_port), timeout=1).close()
                return True
            except OSError:
                return False

        self.wait(listening, 30, "haproxy")

    # --- state ------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        for node in self.nodes:
            try:
                r = httpx.get(f"http://127.0.0.1:{node.rest_port}/cluster", timeout=1)
                if r.status_code == 200:
                    return list(r.json().get("members", []))
            except (httpx.HTTPError, ValueError):
                continue
        return []

    def leader(self) -> Node | None:
        for node in self.nodes:
            try:
                if httpx.get(f"http://127.0.0.1:{node.rest_port}/primary",
                             timeout=1).status_code == 200:
                    return node
            except httpx.HTTPError:
                continue
        return None

    def healthy(self, size: int = 3) -> bool:
        members = self.members()
        leaders = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
        streaming = [m for m in members if m.get("role") != "leader"
                     and m.get("state") == "streaming"]
        synced = [m for m in members if m.get("role") == "sync_standby"]
        return (len(leaders) == 1 and len(streaming) >= size - 1
                and (not self.synchronous or len(synced) >= 1))

    def sync_standby(self) -> Node | None:
        names = {m["name"] for m in self.members() if m.get("role") == "sync_standby"}
        return next((n for n in self.nodes if n.name in names), None)

    @staticmethod
    def wait(check: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.3)

    # --- faults -----------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """kill -9 of the node's Patroni and of its postmaster (what a lost machine does;
        the backends notice their postmaster is gone and exit)."""
        postmaster = node.postmaster_pid()
        if node.proc is not None:
            _killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait()
        if postmaster:
            _kill(postmaster, signal.SIGKILL)

    def switchover(self, leader: Node, candidate: Node) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PATRONI_VENV / "bin" / "patronictl"),
             "-c", str(leader.config), "switchover", self.scope, "--leader", leader.name,
             "--candidate", candidate.name, "--force"],
            capture_output=True, text=True, timeout=120, cwd=self.base)

    def stop(self) -> None:
        for node in self.nodes:
            postmaster = node.postmaster_pid()
            if node.proc is not None and node.proc.poll() is None:
                _killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait()
            if postmaster:
                _kill(postmaster, signal.SIGQUIT)  # immediate shutdown, children included
        for proc in (self.haproxy, self.etcd):
            if proc is not None and proc.poll() is None:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        deadline = time.monotonic() + 10
        for node in self.nodes:
            pid = node.postmaster_pid()
            while pid and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid and _alive(pid):
                _kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours is gone for every purpose here
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False

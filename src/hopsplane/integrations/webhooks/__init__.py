"""Outbound HTTP for webhooks: one POST to a customer's URL, to an address checked at send
time.

The host is resolved here, every address it resolves to is checked (never loopback,
private, link-local, CGNAT, multicast, reserved or unspecified: nothing but global unicast,
which also rules out the cloud metadata addresses), and the connection is made to the
checked address with the URL's host kept as the Host header and the TLS server name. So a
name that resolves to a public address at registration and to 127.0.0.1 later (DNS
rebinding) is refused when it matters. Redirects are not followed; at most
:data:`BODY_PREFIX` characters of the response are read.

Timeouts: one total deadline per attempt (:data:`DEADLINE`) covers connecting, the TLS
handshake, sending and reading the status line, headers and body prefix. A per-operation
timeout alone is not enough: a consumer that drips a byte a second answers every read in
time and would hold the worker for as long as it likes. Every blocking operation of the
connection's socket is given what is left of the deadline as its timeout
(:class:`_DeadlineSocket`, :class:`_DeadlineSSLSocket`), so the attempt ends by the
deadline whatever the consumer does. Resolving the name is not covered (the resolver's own
timeouts bound it).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from hopsplane.errors import Invalid, Unavailable

BODY_PREFIX = 256
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
DEADLINE = 10.0
"""Seconds one attempt may take in all, from connecting to the last byte read."""
TIMEOUT_PREFIX = "timeout"
"""How the error of an attempt that ran out of time starts (the delivery log shows it)."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class AddressRefused(Invalid):
    """The URL names (or resolves to) an address a webhook may never reach."""


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    body_prefix: str


class DeliveryTimeout(Unavailable):
    """The consumer did not answer within the attempt's deadline (retried like any other
    failure to deliver)."""


class WebhookSender(Protocol):
    def post(self, url: str, headers: dict[str, str], body: bytes) -> WebhookResponse: ...


def address_allowed(ip: IpAddress, extra: Sequence[IpNetwork] = ()) -> bool:
    """Only global unicast addresses (``extra``: networks a test opens, never settings)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in extra):
        return True
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_http: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a webhook URL, or Invalid saying what to
    fix: https (http only in development), a host, no user name or password. An address
    literal is checked here too; a name is checked on every send."""
    if len(url) > 2048:
        raise Invalid("the URL is longer than 2048 characters")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise Invalid("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"not a URL: {exc}") from exc
    if parts.scheme not in (("https", "http") if allow_http else ("https",)):
        raise Invalid("the URL must start with https://" + (" or http://" if allow_http else ""))
    host = parts.hostname
    if not host:
        raise Invalid("the URL needs a host")
    if parts.username or parts.password:
        raise Invalid("the URL must not carry a user name or password")
    if parts.fragment:
        raise Invalid("the URL must not have a #fragment")
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(literal):
        raise AddressRefused(f"{host} is not a public address: webhooks never reach it")
    if host.rstrip(".").lower() in ("localhost", "localhost.localdomain") or host.endswith(
            ".localhost"):
        raise AddressRefused("webhooks never reach localhost")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _Deadline:
    """The instant an attempt must be over; :meth:`left` is what remains of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the attempt's {self.seconds:g} s deadline passed")
        return left if cap is None else min(left, cap)


class _DeadlineSocket(socket.socket):
    """A plain socket whose every blocking call waits at most what is left of the
    deadline (and at most the per-read timeout)."""

    deadline: _Deadline | None = None
    per_call: float | None = None

    def _bound(self) -> None:
        if self.deadline is not None:
            self.settimeout(self.deadline.left(self.per_call))

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._bound()
        return super().recv_into(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._bound()
        return super().recv(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._bound()
        return super().send(*args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self._bound()  # since 3.5 a sendall's timeout bounds the whole call
        super().sendall(*args, **kwargs)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """:class:`_DeadlineSocket` for TLS: the handshake, each read and each write (a
    ``recv_into`` and a ``sendall`` go through ``read`` and ``send``)."""

    deadline: _Deadline | None = None
    per_call: float | None = None

    def _bound(self) -> None:
        if self.deadline is not None:
            self.settimeout(self.deadline.left(self.per_call))

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        self._bound()
        super().do_handshake(*args, **kwargs)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self._bound()
        return super().read(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._bound()
        return super().send(*args, **kwargs)


def _connect(address: str, port: int, deadline: _Deadline, per_call: float
             ) -> _DeadlineSocket:
    raw = socket.create_connection((address, port), deadline.left(CONNECT_TIMEOUT))
    sock = _DeadlineSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
    sock.deadline, sock.per_call = deadline, per_call
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float,
                 deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address, self._deadline, self._per_call = address, deadline, timeout

    def connect(self) -> None:
        self.sock = _connect(self._address, self.port, self._deadline, self._per_call)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float,
                 context: ssl.SSLContext, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address, self._ctx, self._deadline = address, context, deadline
        self._per_call = timeout

    def connect(self) -> None:
        raw = _connect(self._address, self.port, self._deadline, self._per_call)
        tls = self._ctx.wrap_socket(raw, server_hostname=self.host,  # SNI: the name
                                    do_handshake_on_connect=False)
        assert isinstance(tls, _DeadlineSSLSocket)
        tls.deadline, tls.per_call = self._deadline, self._per_call
        self.sock = tls
        tls.do_handshake()


class HttpSender:
    """The real sender. ``allow_http``: development only. ``ca_bundle``: PEM to trust
    instead of the system store (tests). ``open_networks`` and ``resolver``: for tests
    that serve on 127.0.0.1 under a name; the worker builds it with neither."""

    def __init__(
        self, *, allow_http: bool = False, ca_bundle: str | None = None,
        timeout: float = READ_TIMEOUT, deadline: float = DEADLINE,
        open_networks: Sequence[IpNetwork] = (), resolver: Resolver = _resolve,
    ) -> None:
        self.allow_http, self.timeout, self.deadline = allow_http, timeout, deadline
        self.open_networks, self.resolver = tuple(open_networks), resolver
        self.context = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else \
            ssl.create_default_context()
        self.context.sslsocket_class = _DeadlineSSLSocket

    def post(self, url: str, headers: dict[str, str], body: bytes) -> WebhookResponse:
        scheme, host, port, path = check_url(url, allow_http=self.allow_http)
        try:
            addresses = self.resolver(host, port)
        except OSError as exc:
            raise Unavailable(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise Unavailable(f"{host} resolves to no address")
        for address in addresses:  # every one: a name must not mix in a private address
            if not address_allowed(ipaddress.ip_address(address), self.open_networks):
                raise AddressRefused(f"{host} resolves to {address}, not a public address: "
                                     "webhooks never reach it")
        conn: Any
        deadline = _Deadline(self.deadline)
        if scheme == "https":
            conn = _PinnedHTTPSConnection(host, port, addresses[0], self.timeout, self.context,
                                          deadline)
        else:
            conn = _PinnedHTTPConnection(host, port, addresses[0], self.timeout, deadline)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            prefix = response.read(BODY_PREFIX * 4).decode("utf-8", "replace")[:BODY_PREFIX]
            return WebhookResponse(response.status, prefix)
        except TimeoutError as exc:  # a per-read timeout, or the deadline
            raise DeliveryTimeout(f"{TIMEOUT_PREFIX}: {host} did not answer in time ({exc}; "
                                  f"an attempt has {self.deadline:g} s in all)") from exc
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise Unavailable(f"could not deliver to {host}: {type(exc).__name__}: {exc}"
                              ) from exc
        finally:
            conn.close()

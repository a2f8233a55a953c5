"""TLS of the clients that call a cluster (Hopsworks REST, Prometheus): trust a cluster's own
CA bundle, and say in plain words why a certificate was refused.

Clusters usually carry certificates of a private CA (the Hopsworks installer makes one); the
official Python client takes a trust store per connection for that reason
(``hopsworks-api python/hopsworks_common/connection.py``, ``trust_store_path``). A bundle is
PEM text: one or more ``-----BEGIN CERTIFICATE-----`` blocks.
"""

from __future__ import annotations

import re
import ssl

from hopsplane.errors import Invalid

PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
PEM_CHARS = "[\\t\\n\\r\\x20-\\x7e]"
"""What PEM text is made of (a JSON Schema / ECMAScript class, and a Python one)."""
PEM_TEXT = re.compile(f"{PEM_CHARS}*")


def validate_ca_bundle(pem: str, what: str) -> str:
    """A PEM bundle of at least one certificate that OpenSSL loads; Invalid otherwise."""
    text = pem.strip()
    if PEM_CERTIFICATE not in text:
        raise Invalid(f"{what} must be PEM text with at least one '{PEM_CERTIFICATE}' block")
    if not PEM_TEXT.fullmatch(text):  # OpenSSL takes ASCII only (a TypeError otherwise)
        raise Invalid(f"{what} must be PEM text: printable ASCII and line breaks only")
    try:
        ssl.create_default_context(cadata=text + "\n")
    except (ssl.SSLError, ValueError, TypeError) as exc:
        raise Invalid(f"{what} is not a readable PEM certificate bundle ({exc})") from exc
    return text + "\n"


def verify_for(ca_bundle: str | None, verify: bool = True) -> ssl.SSLContext | bool:
    """What httpx's ``verify=`` takes: False when verification is off, a context trusting
    only ``ca_bundle`` when there is one, else True (the system's trust store)."""
    if not verify:
        return False
    if ca_bundle:
        return ssl.create_default_context(cadata=ca_bundle)
    return True


def describe_tls_error(exc: BaseException) -> str | None:
    """A sentence an operator can act on when ``exc`` (or what caused it) is a refused
    certificate or a failed TLS handshake; None when it is something else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return _certificate_problem(current)
        if isinstance(current, ssl.SSLError):
            return (f"the TLS handshake failed ({current.reason or current}): the server may "
                    "not speak TLS on this port, or the URL should be http://")
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its certificate was refused: " + text
    return None


def _certificate_problem(exc: ssl.SSLCertVerificationError) -> str:
    message = str(exc.verify_message or exc.reason or exc)
    lowered = message.lower()
    fix = ("give the cluster the PEM bundle of the CA that signed it (--ca-bundle / "
           "--prometheus-ca-bundle)")
    if "expired" in lowered:
        return f"its certificate has expired ({message}): renew it on the cluster"
    if "not yet valid" in lowered:
        return f"its certificate is not valid yet ({message}): check the clocks"
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return (f"its certificate is for another name ({message}): use the host name the "
                "certificate names in the URL, or reissue it")
    if "self-signed" in lowered or "self signed" in lowered:
        return f"its certificate is self-signed and not trusted ({message}): {fix}"
    if "unable to get local issuer" in lowered or "unable to get issuer" in lowered:
        return f"its certificate was signed by a CA that is not trusted ({message}): {fix}"
    return f"its certificate was refused ({message}): {fix}"

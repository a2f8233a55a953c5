"""Every token and secret the test suite creates must stay out of every log line.

:func:`start` (called once, when pytest starts) routes the application's logs as in
production (structlog through the stdlib root logger, JSON lines) and copies every line
written by the app's log handler into one file; it also records every token and secret the
code makes while the suite runs: ``secrets.token_urlsafe`` / ``token_hex`` called by hopsplane
(invite tokens, usage ingestion tokens, OAuth states and codes), access tokens signed with
``jwt.encode`` by hopsplane (the development issuer),
the plaintext of everything encrypted with ``SecretBox`` (cluster API keys, kubeconfigs),
customers' API keys (``apikeys.rules.new_key``), and the suite's own configured secrets. :func:`leaks` (called when the session ends) greps
the captured lines for each of them.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import jwt

from hopsplane import observability
from hopsplane.crypto import SecretBox

MIN_LENGTH = 12  # shorter "secrets" (e.g. an API key "key" in a fixture) would match anything

_created: set[str] = set()
_log_file: Path | None = None


def remember(value: object) -> None:
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        _created.add(value)


class _Tee:
    """sys.stderr, plus a copy of every line in the suite's log file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> int:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _recording(function: Any) -> Any:
    """Records what ``function`` returns when hopsplane's code called it (the test fakes
    also use ``secrets`` for ids that are meant to be shown, such as Stripe event ids)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller == "hopsplane" or caller.startswith("hopsplane."):
            remember(result)
        return result

    wrapper.__wrapped__ = function  # type: ignore[attr-defined]
    return wrapper


def start(configured_secrets: list[str]) -> Path:
    global _log_file
    handle, name = tempfile.mkstemp(prefix="hopsplane-suite-", suffix=".log")
    _log_file = Path(name)
    import os

    os.close(handle)
    tee = _Tee(_log_file)
    observability._StderrHandler.stream = property(  # type: ignore[assignment]
        lambda self: tee, lambda self, value: None)
    observability.configure_logging("INFO", "json")
    secrets.token_urlsafe = _recording(secrets.token_urlsafe)
    secrets.token_hex = _recording(secrets.token_hex)
    jwt.encode = _recording(jwt.encode)
    original_encrypt = SecretBox.encrypt

    def encrypt(self: SecretBox, plaintext: str) -> str:
        remember(plaintext)
        return original_encrypt(self, plaintext)

    SecretBox.encrypt = encrypt  # type: ignore[method-assign]
    from hopsplane.apikeys import rules as key_rules

    original_new_key = key_rules.new_key

    def new_key() -> str:
        key = original_new_key()
        remember(key)
        return key

    key_rules.new_key = new_key
    for secret in configured_secrets:
        remember(secret)
    return _log_file


def found_in(text: str, watched: set[str]) -> list[str]:
    return sorted(s for s in watched if s in text)


def leaks() -> tuple[int, list[str]]:
    """(how many secrets were watched, the ones found in a log line)."""
    if _log_file is None:
        return 0, []
    return len(_created), found_in(_log_file.read_text(encoding="utf-8", errors="replace"),
                                   _created)


def log_text() -> str:
    return "" if _log_file is None else _log_file.read_text(encoding="utf-8", errors="replace")


def log_file() -> Path | None:
    return _log_file


def discard() -> None:
    if _log_file is not None:
        _log_file.unlink(missing_ok=True)

"""The SMTP mailer against a real local SMTP server (aiosmtpd)."""

import socket

import pytest

from hopsplane.config import Settings
from hopsplane.errors import Unavailable
from hopsplane.integrations.email import Email, LogMailer, SmtpMailer, build_mailer
from tests.fake_smtp import SmtpInbox


def test_smtp_mailer_delivers_to_a_real_server(smtp_server: tuple[int, SmtpInbox]) -> None:
    port, inbox = smtp_server
    mailer = build_mailer(Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                                   smtp_from="ops@hopsplane.test", _env_file=None))  # type: ignore[call-arg]
    assert isinstance(mailer, SmtpMailer)
    mailer.send(Email(to="owner@example.com", subject="Low balance", body="Your balance is 9.99"))
    [(sender, rcpts, content)] = inbox.messages
    assert sender == "ops@hopsplane.test" and rcpts == ["owner@example.com"]
    assert b"Subject: Low balance" in content and b"Your balance is 9.99" in content


def test_an_unreachable_smtp_server_is_unavailable_not_a_crash() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unavailable, match="could not send email"):
        SmtpMailer("127.0.0.1", port, "x@y.z", timeout=2).send(Email("a@b.c", "s", "b"))


def test_without_smtp_emails_are_logged() -> None:
    mailer = build_mailer(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(mailer, LogMailer)
    mailer.send(Email("a@b.c", "subject", "body"))
    assert mailer.sent == [Email("a@b.c", "subject", "body")]

"""Outgoing email: SMTP when configured. Without SMTP, development keeps the messages in
memory (:class:`LogMailer`: the log gets who and what about, never the body, which may hold
an invite link) and every other environment refuses to send (:class:`RefusingMailer`).

Build one with :func:`build_mailer` at start-up and pass it to the services that notify.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import structlog

from hopsplane.config import Settings
from hopsplane.errors import Unavailable

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    body: str
    html: str | None = None
    """The HTML part (rendered from the same template context as ``body``)."""
    message_id: str | None = None
    """The Message-ID header; a notice sets one derived from its event, so that a notice
    sent again (at-least-once delivery) repeats it."""


class Mailer(Protocol):
    delivers: bool
    """False when messages do not reach the recipient (development without SMTP): a flow
    whose email carries a link (an invite) shows the link to its sender instead."""

    def send(self, message: Email) -> None: ...


class LogMailer:
    """Development without SMTP: keeps the messages (``sent``) and logs that one was not
    sent, without its body: bodies may hold live links (invite tokens)."""

    delivers = False

    def __init__(self) -> None:
        self.sent: list[Email] = []

    def send(self, message: Email) -> None:
        self.sent.append(message)
        log.info("email not sent: SMTP is not configured (development)", to=message.to,
                 subject=message.subject)


class RefusingMailer:
    """Outside development without SMTP: nothing can be sent, and nothing is pretended.
    Invites answer 503 saying so; low-balance notices stay pending until SMTP is set."""

    delivers = False

    def send(self, message: Email) -> None:
        raise Unavailable(
            "email is not configured on this server (HOPSPLANE_SMTP_HOST): nothing can be "
            "sent", retry_after=3600,
        )


class SmtpMailer:
    delivers = True

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout

    def send(self, message: Email) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = message.to
        msg["Subject"] = message.subject
        if message.message_id:
            msg["Message-ID"] = message.message_id
        msg.set_content(message.body)
        if message.html:
            msg.add_alternative(message.html, subtype="html")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self.password:
                    smtp.login(self.username, self.password)
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            where = f"{self.host}:{self.port}"
            raise Unavailable(f"could not send email through {where}: {exc}") from exc
        log.info("email sent", to=message.to, subject=message.subject)


def build_mailer(settings: Settings) -> Mailer:
    if not settings.smtp_host:
        return LogMailer() if settings.environment == "development" else RefusingMailer()
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
    )

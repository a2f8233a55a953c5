"""A local SMTP server's inbox (aiosmtpd handler)."""

from __future__ import annotations

from typing import Any


class SmtpInbox:
    """What a local SMTP server (aiosmtpd) received: (sender, recipients, raw message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"

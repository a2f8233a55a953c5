"""The one error hierarchy. Services raise these; every edge renders them the same way.

The API renders ``{"error": <class name>, "code": <stable code>, "detail": <message>}``
with the class's status; the CLI prints the message and exits non-zero. ``code`` is what
clients match on (the detail is English for people and may change): each class has a
default derived from its name (``NotFound`` -> ``not_found``, also for classes added
later), and a raise may name a more precise one (``Conflict(..., code="insufficient_balance")``).
Anything that is not an AppError is a bug and is logged with its traceback (never shown to
the caller).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar


def code_of(name: str) -> str:
    """``PaymentRequired`` -> ``payment_required``: the default code of an error class."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class AppError(Exception):
    status: ClassVar[int] = 400
    code: str = "app_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            cls.code = code_of(cls.__name__)

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status  # type: ignore[misc]
        if code is not None:
            self.code = code
        self.context = context

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, str]:
        return {"error": self.name, "code": self.code, "detail": self.message}


class Invalid(AppError):
    status = 422


class Unauthorized(AppError):
    status = 401


class Forbidden(AppError):
    status = 403


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class Gone(AppError):
    status = 410


class PaymentRequired(AppError):
    status = 402


class Unavailable(AppError):
    """A dependency (database, external service) cannot be reached right now."""

    status = 503


class TooManyRequests(AppError):
    """A rate limit refused the request; the detail says when to try again."""

    status = 429


class PayloadTooLarge(AppError):
    """The request body is larger than this endpoint accepts."""

    status = 413


ALL_ERRORS: tuple[type[AppError], ...] = (
    Invalid,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    PaymentRequired,
    Unavailable,
    TooManyRequests,
    PayloadTooLarge,
)

"""One error shape for every response: {"error": "ClassName", "code": "stable_code",
"detail": "..."}. Clients match on ``code``; the detail is for people."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hopsplane.errors import ALL_ERRORS, AppError, Invalid, code_of

log = structlog.get_logger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 2

_STATUS_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
}


_DEFAULT_CODES = {cls.status: cls.code for cls in ALL_ERRORS}


def status_code_of(status: int) -> str:
    """The code of an error that only has an HTTP status (a framework 404 or 405)."""
    return _DEFAULT_CODES.get(status) or code_of(_STATUS_NAMES.get(status, "HTTPError"))


class ErrorBody(BaseModel):
    error: str = Field(description="The error's class, e.g. `NotFound`.")
    code: str = Field(
        description="Stable machine code to match on, e.g. `not_found` or a more precise "
        "one a route documents (`insufficient_balance`); the detail may change, this not."
    )
    detail: str = Field(description="What went wrong, in English, for people.")


def error_responses(
    *statuses: int, codes: Mapping[int, Sequence[str]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error responses a route can give: per status, the
    error shape and the codes it may carry (the status's default code, plus the precise
    codes in ``codes``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        listed = [status_code_of(s), *((codes or {}).get(s, ()))]
        name = _STATUS_NAMES.get(s, "Error")
        out[s] = {
            "model": ErrorBody,
            "description": f"{name}; `code` is one of: " + ", ".join(f"`{c}`" for c in listed),
            "content": {"application/json": {"example": {
                "error": name, "code": listed[-1], "detail": "what went wrong"}}},
        }
    return out


def _body(error: str, detail: str, code: str | None = None) -> dict[str, str]:
    return {"error": error, "code": code or code_of(error), "detail": detail}


HtmlErrors = Callable[[Request, AppError], Response | None]
"""``app.state.html_errors``: renders an error as a page for the web console's paths (and
returns None for every other path, which keeps the JSON error shape)."""


def _as_html(request: Request, exc: AppError) -> Response | None:
    render: HtmlErrors | None = getattr(request.app.state, "html_errors", None)
    return render(request, exc) if render is not None else None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        page = _as_html(request, exc)
        if page is not None:
            return page
        retry = exc.context.get("retry_after")
        if exc.status == 503 and not isinstance(retry, int):
            retry = DEFAULT_RETRY_AFTER_SECONDS  # every 503 says when to come back
        headers = {"Retry-After": str(retry)} if isinstance(retry, int) else None
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
        page = _as_html(request, Invalid("; ".join(parts), status=422))
        if page is not None:
            return page
        return JSONResponse(_body("Invalid", "; ".join(parts)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # A body that is not JSON fails validation like any other bad body: one status
            # (422) for every malformed input, declared on every operation that takes one.
            return JSONResponse(
                _body("Invalid", "the request body is not valid JSON"), status_code=422
            )
        name = _STATUS_NAMES.get(exc.status_code, "HTTPError")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        page = _as_html(request, AppError(
            str(exc.detail), status=exc.status_code, code=status_code_of(exc.status_code)))
        if page is not None:
            page.headers.update(headers)
            return page
        return JSONResponse(
            _body(name, str(exc.detail), status_code_of(exc.status_code)),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # The database refused a value (a NUL character in text, a number out of range):
        # the input was bad and the transaction is rolled back, so nothing changed.
        reason = str(getattr(exc.orig, "args", [""])[0] or "a value was refused").split("\n")[0]
        page = _as_html(request, Invalid(f"invalid value: {reason}"))
        if page is not None:
            return page
        return JSONResponse(_body("Invalid", f"invalid value: {reason}"), status_code=422)

    # Anything else (a bug, or the database being unavailable) is answered by the serving
    # middleware (hopsplane.api.serving): a handler for `Exception` here would run in
    # Starlette's outermost middleware, which re-raises to the server after answering, and
    # the server then closes the client's keep-alive connection.


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path. Starlette's 405 names only the
    methods of the first route that matched the path, where one path often has a route
    per method (GET and POST, GET and DELETE)."""
    found: set[str] = set()
    _collect_methods(request.app.router.routes, dict(request.scope), found)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def _collect_methods(routes: Iterable[Any], scope: dict[str, Any], found: set[str]) -> None:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI keeps routers nested
        if included is not None:
            prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            path = scope["path"]
            if prefix and not path.startswith(prefix):
                continue
            _collect_methods(included.routes, {**scope, "path": path[len(prefix):]}, found)
            continue
        methods = getattr(route, "methods", None)
        if methods and route.matches(scope)[0] in (Match.FULL, Match.PARTIAL):
            found.update(methods)


DATE_RANGE_RULES = (
    "`to` must not be before `from`, and the range is at most 366 days (`to` - `from` < "
    "366): rules between the two parameters, which OpenAPI cannot state."
)


def with_rules(
    responses: dict[int | str, dict[str, Any]], rules: str, status: int = 422
) -> dict[int | str, dict[str, Any]]:
    """``responses`` with the rules a refusal (``status``) also stands for, in its
    description: the checks between fields that a schema cannot express."""
    out = dict(responses)
    entry = dict(out[status])
    entry["description"] = f"{entry['description']}. Also refused: {rules}"
    out[status] = entry
    return out

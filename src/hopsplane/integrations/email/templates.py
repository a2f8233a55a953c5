"""Emails rendered from templates: each message is ``templates/<name>.txt`` (the plain
text part) and ``templates/<name>.html`` (the HTML part, autoescaped), with the same
context. Links in them point only at pages the console serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hopsplane.integrations.email import Email

_FOLDER = Path(__file__).parent / "templates"
_ENV = Environment(
    loader=FileSystemLoader(_FOLDER),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def render(name: str, *, to: str, subject: str, **context: Any) -> Email:
    text = _ENV.get_template(f"{name}.txt").render(**context).strip() + "\n"
    html = _ENV.get_template(f"{name}.html").render(**context)
    return Email(to=to, subject=subject, body=text, html=html)

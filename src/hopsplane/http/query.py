"""One value per query parameter. Every query parameter of the API and the console is a
scalar; given twice (``?cursor=a&cursor=b``) the framework would silently keep the last
one, so the request is refused instead, like any other malformed input."""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRoute

from hopsplane.errors import Invalid


def single_query_values(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = {p.alias for p in route.dependant.query_params}
    seen: set[str] = set()
    repeated: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen and name in declared:
            repeated.add(name)
        seen.add(name)
    if repeated:
        raise Invalid(f"give each query parameter once: {', '.join(sorted(repeated))}")

"""A fast lane for one router's requests: the same route, found with fewer matches.

FastAPI tries an app's routes in order, and an included router's routes through a
per-candidate bookkeeping layer, twice per request (once to find the router, once inside it).
The FHIR API is the node's busiest router and its reads and searches sit 15th and 20th in it,
so a FHIR read cost some 35 route matches. ``PrefixLane`` sits in the app's route list just
before the routers it serves and picks, for a request under its prefix, **the route the app
would have picked**: the first of those routers' routes, in order, whose path matches and
whose methods include the request's. It looks only at routes of the request's method, with one
compiled regex each, and confirms with the route's own ``matches``. A route outside the prefix
is skipped if its path is literal (it matches that one path, which is not under the prefix);
one with parameters could match under the prefix, so the lane refuses to be built with it.

When no route of the router matches fully (a method none of them takes: 405s, ``HEAD``,
``OPTIONS``), the lane does not answer and the app's ordinary routing goes on exactly as
without it (the routers stay included: OpenAPI, and those partial matches). The lane is built
from the routes as they are when it is built: build it once the routers are complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send


class PrefixLane(BaseRoute):
    """Dispatch a request under ``prefix`` straight to the route of ``routes`` (those of the
    routers that follow the lane, in order) that ordinary routing picks (see the module
    docstring); no answer for anything else."""

    def __init__(self, prefix: str, routes: Sequence[BaseRoute]) -> None:
        plain: list[Route] = []
        for route in routes:
            if not isinstance(route, Route):
                raise TypeError(f"a lane serves plain routes, not {route!r}")
            if route.path.startswith(prefix):
                plain.append(route)
            elif route.param_convertors:
                raise TypeError(f"{route.path} could match under {prefix}: not in a lane")
        self._prefix = prefix
        methods = {m for r in plain for m in r.methods or ()}
        #: Per method, the routes that take it, in the router's order (a route without
        #: methods takes every method).
        self._by_method = {
            m: tuple(r for r in plain if r.methods is None or m in r.methods) for m in methods
        }
        self._any_method = tuple(r for r in plain if r.methods is None)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path = get_route_path(scope)
        if not path.startswith(self._prefix):
            return Match.NONE, {}
        for route in self._by_method.get(scope["method"], self._any_method):
            if route.path_regex.match(path) is None:
                continue
            match, child_scope = route.matches(scope)
            if match is not Match.FULL:  # pragma: no cover - the path and method matched
                return Match.NONE, {}
            return Match.FULL, {**child_scope, "route": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope["route"]
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # the router itself, still included, answers

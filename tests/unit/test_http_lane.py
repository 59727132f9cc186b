"""``PrefixLane`` picks exactly the route ordinary routing picks (the oracle: the routers'
routes tried in order, the first full match wins), or stays out of it."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.routing import BaseRoute, Match, Route

from medledger.entrypoints.fhir import routes as fhir_routes
from medledger.entrypoints.http import auth_routes
from medledger.entrypoints.http.lane import PrefixLane

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
PATHS = (
    "/fhir",
    "/fhir/",
    "/fhir/metadata",
    "/fhir/Observation",
    "/fhir/Observation/abc",
    "/fhir/Observation/_history",
    "/fhir/Observation/_search",
    "/fhir/Observation/abc/_history",
    "/fhir/Observation/abc/_history/2",
    "/fhir/Observation/abc/_history/2/x",
    "/fhir/Patient/p1/$everything",
    "/fhir/Consent",
    "/fhir/Consent/c1",
    "/fhir/AuditEvent",
    "/fhir/AuditEvent/a1",
    "/fhir/Provenance",
    "/fhir/Provenance/p-1",
    "/fhir/Nope/x/y/z",
    "/fhir/Observation/abc\n",
    "/fhir/.well-known/smart-configuration",
    "/.well-known/smart-configuration",
    "/auth/token",
    "/fhirx",
    "/fhirx/Observation/abc",
    "/records/abc",
    "/",
)


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": root_path + path, "root_path": root_path}


def _oracle(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match is Match.FULL:
            return route
    return None


@pytest.fixture(scope="module")
def fhir_router_routes() -> list[BaseRoute]:
    """The routes the app's lane serves, in the app's order: the token endpoint's router
    (with its /fhir/.well-known/smart-configuration), then the FHIR API."""
    none = cast(Any, None)
    tokens = cast(Any, SimpleNamespace(token_endpoint="http://node/auth/token"))
    return [
        *auth_routes.router(tokens).routes,
        *fhir_routes.router(fhir=none, consents=none, principal=none).routes,
    ]


@pytest.mark.parametrize("root_path", ["", "/node"])
def test_the_lane_picks_the_route_ordinary_routing_picks(
    fhir_router_routes: list[BaseRoute], root_path: str
) -> None:
    lane = PrefixLane("/fhir", fhir_router_routes)
    for method, path in itertools.product(METHODS, PATHS):
        scope = _scope(method, path, root_path)
        # Outside the prefix the lane leaves every request to ordinary routing.
        expected = _oracle(fhir_router_routes, scope) if path.startswith("/fhir") else None
        match, child_scope = lane.matches(dict(scope))
        if expected is None:
            assert match is Match.NONE, (method, path)
        else:
            assert match is Match.FULL, (method, path)
            assert child_scope["route"] is expected, (method, path)
            assert child_scope["path_params"] == expected.matches(dict(scope))[1]["path_params"]


def test_the_busiest_routes_go_through_the_lane(fhir_router_routes: list[BaseRoute]) -> None:
    lane = PrefixLane("/fhir", fhir_router_routes)
    for path, name in (
        ("/fhir/Observation/abc", "read"),
        ("/fhir/Observation", "search"),
        ("/fhir/.well-known/smart-configuration", "discovery"),  # not FHIR read
    ):
        match, child_scope = lane.matches(_scope("GET", path))
        assert match is Match.FULL
        assert cast(Route, child_scope["route"]).name == name


def test_the_lane_ignores_websockets_and_other_prefixes(
    fhir_router_routes: list[BaseRoute],
) -> None:
    lane = PrefixLane("/fhir", fhir_router_routes)
    assert lane.matches({"type": "websocket", "path": "/fhir/x", "root_path": ""})[0] is Match.NONE
    assert lane.matches(_scope("GET", "/ledger/blocks"))[0] is Match.NONE


def test_a_lane_only_serves_routes_under_its_prefix(fhir_router_routes: list[BaseRoute]) -> None:
    with pytest.raises(TypeError):
        PrefixLane("/ledger", fhir_router_routes)

"""``/fhir``: FHIR R4 (4.0.1) REST over HTTP (FHIR R4 §3.1.0 "RESTful API").

Each route: 1. content negotiation (``application/fhir+json``, also ``application/json``;
anything else 406 / 415); 2. the body, size-limited, parsed as JSON; 3. the principal, from the
dependency the app is built with (bearer tokens in production, a test double in tests);
4. the use case (``FhirService``) in a worker thread, with ``now`` read once; 5. the answer as
FHIR JSON, with ``ETag``/``Location``/``Last-Modified`` as FHIR asks; any medledger error as
an ``OperationOutcome`` through the one table in ``outcome.py`` (never a 500 for bad input).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from medledger.core.auth.principal import Principal
from medledger.core.fhir.bundle import Condition, Entry, parse_condition_string
from medledger.core.fhir.provenance import instant
from medledger.core.fhir.resource import STORED_TYPES, check_id
from medledger.core.fhir.search import (
    DEFAULT_COUNT,
    MAX_COUNT,
    MAX_PARAMETERS,
    SearchQuery,
    parse_query,
)
from medledger.entrypoints.fhir.capability import capability_statement
from medledger.entrypoints.fhir.outcome import (
    MethodNotAllowedError,
    NotAcceptableError,
    UnsupportedMediaError,
    operation_outcome,
    outcome_for,
)
from medledger.entrypoints.http.errors import BEARER_CHALLENGE
from medledger.entrypoints.http.ledger_routes import read_body
from medledger.errors import InvalidInputError, MedledgerError, NotFoundError
from medledger.services.fhir import FhirService, HistoryEntry, SearchResult, Written
from medledger.services.fhir_bundle import BundleResult, BundleService, Outcome
from medledger.services.fhir_consent import FhirConsentService

FHIR_JSON: Final = "application/fhir+json"
#: The largest resource body accepted, and the largest ``_search`` form.
MAX_RESOURCE_BYTES: Final = 1024 * 1024
MAX_FORM_BYTES: Final = 16 * 1024
MAX_BUNDLE_BYTES: Final = 8 * 1024 * 1024
SIGNED_HEADER: Final = "X-Medledger-Signed-Transaction"
MAX_SIGNED_HEADER: Final = 12_000
_ACCEPTED: Final = ("application/fhir+json", "application/json", "application/*", "*/*")
PrincipalDependency = Callable[[Request], Awaitable[Principal]]


#: ``json.dumps(content, ensure_ascii=False, separators=(",", ":"))``, byte for byte, from one
#: encoder made once; without the cycle check (an answer is built from parsed JSON and fresh
#: dicts: it has no cycles), which costs the C encoder ~18 % on a searchset page.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class FhirJson(Response):
    media_type = FHIR_JSON + "; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode()


def fhir_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> FhirJson:
    return FhirJson(content, status_code=status, headers=headers)


class FhirRoute(APIRoute):
    """Every error on a ``/fhir`` route becomes an OperationOutcome (``outcome.py``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                _negotiate(request)
                return await handler(request)
            except MedledgerError as e:
                status, outcome = outcome_for(e)
                response = fhir_response(outcome, status)
                if status == 401:  # RFC 6750 §3: say how to authenticate
                    response.headers["WWW-Authenticate"] = BEARER_CHALLENGE
                return response

        return guarded


def _negotiate(request: Request) -> None:
    """FHIR R4 §3.1.0.1.8: JSON only; ``_format`` may ask for it too."""
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt not in ("json", FHIR_JSON, "application/json"):
        raise NotAcceptableError("_format: this server speaks JSON only", parameter="_format")
    accept = request.headers.get("accept")
    if accept and not any(kind in accept for kind in _ACCEPTED):
        raise NotAcceptableError(
            "Accept: this server answers application/fhir+json", parameter="Accept"
        )
    if request.method in ("POST", "PUT") and not request.url.path.endswith("/_search"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in ("application/fhir+json", "application/json"):
            raise UnsupportedMediaError(
                "Content-Type: send application/fhir+json", parameter="Content-Type"
            )


async def _json_body(request: Request, limit: int = 0) -> object:
    raw = await read_body(request, limit or MAX_RESOURCE_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise InvalidInputError("the body is not JSON", parameter="body") from e


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInputError("the body is not a JSON object", parameter="resourceType")
    return body


def _now_ms() -> int:
    return int(time.time() * 1000)


def _type(resource_type: str) -> str:
    if resource_type not in STORED_TYPES:
        raise NotFoundError("this server does not serve that resource type")
    return resource_type


def _if_match(request: Request) -> int | None:
    """``If-Match: W/"3"`` (FHIR R4 §3.1.0.5.1 version-aware updates)."""
    value = request.headers.get("if-match")
    if value is None:
        return None
    bare = value.strip().removeprefix("W/").strip('"')
    if not bare.isdigit() or len(bare) > 12:
        raise InvalidInputError('If-Match: W/"<versionId>"', parameter="If-Match")
    return int(bare)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _written(request: Request, written: Written, status: int) -> FhirJson:
    resource = written.resource
    location = (
        f"{_base(request)}/{resource['resourceType']}/{resource['id']}/_history/{written.version}"
    )
    return fhir_response(
        resource,
        status,
        {
            "Location": location,
            "ETag": f'W/"{written.version}"',
            "X-Provenance": f"Provenance/{written.provenance['id']}",
        },
    )


def _searchset(request: Request, result: SearchResult) -> dict[str, Any]:
    base = _base(request)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in result.matches
    ]
    entries += [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "include"},
        }
        for r in result.included
    ]
    if result.suppressed:
        entries.append(_suppressed())
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    query = result.query
    if query is None or query.total:
        bundle["total"] = result.total
    if query is not None:
        bundle["link"] = _links(base, query, result.total)
    bundle["entry"] = entries
    return bundle


def _suppressed() -> dict[str, Any]:
    """The HL7 break-the-glass pattern: results were withheld; nothing says which."""
    return {
        "resource": operation_outcome(
            "suppressed",
            "some results were withheld by the patient's consent",
            severity="information",
        ),
        "search": {"mode": "outcome"},
    }


def _links(base: str, query: SearchQuery, total: int) -> list[dict[str, str]]:
    url = f"{base}/{query.resource_type}?"
    links = [{"relation": "self", "url": url + urlencode(query.link_params(query.offset))}]
    if query.count and query.offset + query.count < total:
        nxt = query.offset + query.count
        links.append({"relation": "next", "url": url + urlencode(query.link_params(nxt))})
    if query.offset > 0:
        prev = max(0, query.offset - max(query.count, 1))
        links.append({"relation": "previous", "url": url + urlencode(query.link_params(prev))})
    return links


def _history_bundle(request: Request, entries: list[HistoryEntry]) -> dict[str, Any]:
    base = _base(request)
    out = []
    for entry in entries:
        a = entry.anchor
        item: dict[str, Any] = {"fullUrl": f"{base}/{a.resource_type}/{a.record_id}"}
        if entry.resource is not None:
            item["resource"] = entry.resource
        method = {"create": "POST", "update": "PUT", "delete": "DELETE"}[a.activity]
        url = a.resource_type if method == "POST" else f"{a.resource_type}/{a.record_id}"
        item["request"] = {"method": method, "url": url}
        item["response"] = {
            "status": "410" if a.activity == "delete" else ("201" if method == "POST" else "200"),
            "etag": f'W/"{a.version}"',
            "lastModified": instant(a.time_ms),
        }
        out.append(item)
    return {"resourceType": "Bundle", "type": "history", "total": len(out), "entry": out}


_REASON = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified"}


def _entry_response(request: Request, outcome: Outcome) -> dict[str, Any]:
    """One ``transaction-response``/``batch-response`` entry (FHIR R4 §3.1.0.11.4)."""
    if outcome.error is not None:
        status, operation = outcome_for(outcome.error)
        return {"response": {"status": str(status), "outcome": operation}}
    response: dict[str, Any] = {"status": f"{outcome.status} {_REASON[outcome.status]}"}
    item: dict[str, Any] = {"response": response}
    base = _base(request)
    written, matched = outcome.written, outcome.matched
    if written is not None:
        resource = written.resource
        response["location"] = (
            f"{resource['resourceType']}/{resource['id']}/_history/{written.version}"
        )
        response["etag"] = f'W/"{written.version}"'
        response["lastModified"] = resource["meta"]["lastUpdated"]
        if outcome.status != 204:
            item["fullUrl"] = f"{base}/{resource['resourceType']}/{resource['id']}"
            item["resource"] = resource
    elif matched is not None:  # a conditional create that found its resource: not created
        response["location"] = (
            f"{matched.resource_type}/{matched.record_id}/_history/{matched.version}"
        )
        response["etag"] = f'W/"{matched.version}"'
        response["lastModified"] = instant(matched.time_ms)
        item["fullUrl"] = f"{base}/{matched.resource_type}/{matched.record_id}"
    elif outcome.search is not None:
        item["resource"] = _searchset(request, outcome.search)
    elif outcome.resource is not None:
        meta = outcome.resource["meta"]
        response["etag"] = f'W/"{meta["versionId"]}"'
        response["lastModified"] = meta["lastUpdated"]
        item["fullUrl"] = f"{base}/{outcome.resource['resourceType']}/{outcome.resource['id']}"
        item["resource"] = outcome.resource
    return item


def _bundle_response(request: Request, result: BundleResult) -> dict[str, Any]:
    entries = [_entry_response(request, outcome) for _, outcome in result.entries]
    return {"resourceType": "Bundle", "type": result.kind, "entry": entries}


def _condition(request: Request) -> Condition:
    """The search of a conditional update or delete: the request's query string."""
    items = parse_qsl(request.url.query, keep_blank_values=True)[: MAX_PARAMETERS + 1]
    return tuple((n, v) for n, v in items if n != "_format") or parse_condition_string("", "url")


def _signed_header(request: Request) -> bytes:
    """``X-Medledger-Signed-Transaction``: the signed envelope's wire bytes, base64url."""
    value = request.headers.get(SIGNED_HEADER)
    if value is None or len(value) > MAX_SIGNED_HEADER:
        raise InvalidInputError(
            f"{SIGNED_HEADER}: the patient's signed transaction (base64url), required",
            parameter=SIGNED_HEADER,
        )
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error) as e:
        raise InvalidInputError(f"{SIGNED_HEADER}: not base64url", parameter=SIGNED_HEADER) from e


def _consent_routes(
    r: APIRouter, consents: FhirConsentService, principal: PrincipalDependency
) -> None:
    """Consent (signed by the patient, on the ledger) and AuditEvent (read-only)."""

    @r.post("/Consent", summary="Grant a consent (the patient's signed consent.grant)")
    async def grant(request: Request) -> Response:
        body = await _json_body(request)
        wire = _signed_header(request)
        who = await principal(request)
        resource = await run_in_threadpool(consents.grant, who, body, wire, _now_ms())
        return fhir_response(
            resource,
            201,
            {
                "Location": f"{_base(request)}/Consent/{resource['id']}/_history/1",
                "ETag": f'W/"{resource["meta"]["versionId"]}"',
            },
        )

    @r.put("/Consent/{consent_id}", summary="Revoke by status inactive (signed consent.revoke)")
    async def update(request: Request, consent_id: str) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or body.get("status") not in ("inactive", "rejected"):
            raise InvalidInputError(
                "Consent.status: a granted consent only changes by revocation (status "
                "inactive); grant a new one for new terms",
                parameter="Consent.status",
            )
        wire = _signed_header(request)
        who = await principal(request)
        await run_in_threadpool(consents.revoke, who, consent_id, wire, _now_ms())
        return fhir_response(await run_in_threadpool(consents.read, who, consent_id, _now_ms()))

    @r.delete("/Consent/{consent_id}", summary="Revoke (the patient's signed consent.revoke)")
    async def revoke(request: Request, consent_id: str) -> Response:
        wire = _signed_header(request)
        who = await principal(request)
        await run_in_threadpool(consents.revoke, who, consent_id, wire, _now_ms())
        return Response(status_code=204)

    @r.get("/Consent/{consent_id}", summary="A consent, from the ledger")
    async def read(request: Request, consent_id: str) -> Response:
        who = await principal(request)
        return fhir_response(await run_in_threadpool(consents.read, who, consent_id, _now_ms()))

    @r.get("/Consent", summary="A patient's consents, from the ledger")
    async def search(request: Request) -> Response:
        patient = _only(request, "patient")
        who = await principal(request)
        found = await run_in_threadpool(consents.search, who, patient, _now_ms())
        return fhir_response(_plain_searchset(request, found))

    @r.get("/AuditEvent", summary="A patient's access events (BALP AuditEvents), read-only")
    async def audit(request: Request) -> Response:
        patient = _only(request, "patient", "_count")
        count = request.query_params.get("_count")
        if count is not None and (not count.isdigit() or len(count) > 4):
            raise InvalidInputError("_count: an integer", parameter="_count")
        who = await principal(request)
        found = await run_in_threadpool(
            consents.audit_events, who, patient, None if count is None else int(count), _now_ms()
        )
        return fhir_response(_plain_searchset(request, found))

    @r.api_route(
        "/AuditEvent{rest:path}",
        methods=["POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    async def audit_is_read_only(rest: str) -> Response:  # noqa: ARG001
        raise MethodNotAllowedError("AuditEvent is read-only: it is the access-event log")


def _only(request: Request, *allowed: str) -> str | None:
    for name in request.query_params:
        if name not in (*allowed, "_format"):
            raise InvalidInputError(f"{name[:64]}: not supported here", parameter=name[:64])
    return request.query_params.get("patient")


def _plain_searchset(request: Request, resources: list[dict[str, Any]]) -> dict[str, Any]:
    base = _base(request)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def router(
    *, fhir: FhirService, consents: FhirConsentService, principal: PrincipalDependency
) -> APIRouter:
    r = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute)
    bundles = BundleService(fhir)
    _consent_routes(r, consents, principal)

    @r.post("", summary="A transaction or batch Bundle")
    @r.post("/", include_in_schema=False)
    async def bundle(request: Request) -> Response:
        body = await _json_body(request, MAX_BUNDLE_BYTES)
        who = await principal(request)
        result = await run_in_threadpool(bundles.process, who, body, _now_ms())
        return fhir_response(_bundle_response(request, result))

    @r.get("/metadata", summary="The CapabilityStatement")
    async def metadata(request: Request) -> Response:
        return fhir_response(capability_statement(_base(request), instant(_now_ms())))

    @r.get("/Patient/{patient_id}/$everything", summary="A patient's record")
    async def everything(request: Request, patient_id: str) -> Response:
        who = await principal(request)
        result = await run_in_threadpool(fhir.everything, who, patient_id, _now_ms())
        return fhir_response(_searchset(request, result))

    @r.get("/Provenance", summary="The Provenance of each version of a target")
    async def provenance_search(request: Request) -> Response:
        _only(request, "target")
        target = request.query_params.get("target")
        if target is None:
            raise InvalidInputError("target: Type/id, required", parameter="target")
        who = await principal(request)
        found = await run_in_threadpool(fhir.provenance_of, who, target, _now_ms())
        return fhir_response(_plain_searchset(request, found))

    @r.get("/{resource_type}/_history", summary="Type history")
    async def type_history(request: Request, resource_type: str) -> Response:
        _only(request, "_count")
        count = request.query_params.get("_count", str(DEFAULT_COUNT))
        if not count.isdigit() or not 0 <= int(count) <= MAX_COUNT:
            raise InvalidInputError(f"_count: 0..{MAX_COUNT}", parameter="_count")
        who = await principal(request)
        entries, withheld = await run_in_threadpool(
            fhir.type_history, who, _type(resource_type), int(count), _now_ms()
        )
        bundle = _history_bundle(request, entries)
        if withheld:
            bundle["entry"].append(_suppressed())
        return fhir_response(bundle)

    @r.get("/Provenance/{provenance_id}", summary="A write's Provenance with its ledger anchor")
    async def provenance(request: Request, provenance_id: str) -> Response:
        who = await principal(request)
        return fhir_response(
            await run_in_threadpool(fhir.provenance, who, provenance_id, _now_ms())
        )

    # Read and the other instance routes before search: the routes are tried in order, and
    # reads are the busiest (``/{resource_type}/_history`` and the Consent/Provenance paths
    # above must still come first).
    _instance_routes(r, fhir, principal)

    async def _search(
        request: Request, resource_type: str, form: list[tuple[str, str]]
    ) -> Response:
        items = parse_qsl(request.url.query, keep_blank_values=True)[: MAX_PARAMETERS + 1]
        query = parse_query(_type(resource_type), [*items, *form])
        who = await principal(request)
        result = await run_in_threadpool(fhir.search, who, query, _now_ms())
        return fhir_response(_searchset(request, result))

    @r.get("/{resource_type}", summary="Search")
    async def search(request: Request, resource_type: str) -> Response:
        return await _search(request, resource_type, [])

    @r.post("/{resource_type}/_search", summary="Search (form)")
    async def search_post(request: Request, resource_type: str) -> Response:
        raw = await read_body(request, MAX_FORM_BYTES)
        try:
            form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as e:
            raise InvalidInputError("the form is not UTF-8", parameter="body") from e
        return await _search(request, resource_type, form[: MAX_PARAMETERS + 1])

    _type_write_routes(r, fhir, bundles, principal)

    @r.api_route(
        "/{rest:path}",
        methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
        include_in_schema=False,
    )
    async def unknown(rest: str) -> Response:  # noqa: ARG001 - the path is not echoed
        raise NotFoundError("no such FHIR endpoint on this server")

    @r.api_route("/{rest:path}", methods=["HEAD", "OPTIONS"], include_in_schema=False)
    async def other_method(request: Request, rest: str) -> Response:  # noqa: ARG001
        # Not the ordinary 405 body: a FHIR client gets an OperationOutcome for this too.
        raise MethodNotAllowedError(f"{request.method} is not supported: see /fhir/metadata")

    return r


def _type_write_routes(
    r: APIRouter, fhir: FhirService, bundles: BundleService, principal: PrincipalDependency
) -> None:
    """Create (``If-None-Exist``: conditional), conditional update and conditional delete."""

    @r.post("/{resource_type}", summary="Create (If-None-Exist: conditional)", status_code=201)
    async def create(request: Request, resource_type: str) -> Response:
        body = await _json_body(request)
        if_none_exist = request.headers.get("if-none-exist")
        who = await principal(request)
        if if_none_exist is None:
            written = await run_in_threadpool(
                fhir.create, who, _type(resource_type), body, _now_ms()
            )
            return _written(request, written, 201)
        condition = parse_condition_string(if_none_exist.partition("?")[2] or if_none_exist,
                                           "If-None-Exist")  # fmt: skip
        entry = Entry(0, "POST", _type(resource_type), None, _object(body), None, None,
                      condition=condition)  # fmt: skip
        outcome = await run_in_threadpool(bundles.conditional, who, entry, _now_ms())
        if outcome.written is not None:
            return _written(request, outcome.written, 201)
        return await _existing(request, who, outcome)

    async def _existing(request: Request, who: Principal, outcome: Outcome) -> Response:
        """FHIR R4 §3.1.0.8: one match, so the create is ignored: 200 with the match."""
        head = outcome.matched
        if head is None:  # pragma: no cover - a conditional create either writes or matches
            raise NotFoundError("no such resource")
        resource = await run_in_threadpool(
            fhir.read, who, head.resource_type, head.record_id, _now_ms()
        )
        location = f"{_base(request)}/{head.resource_type}/{head.record_id}/_history/{head.version}"
        return fhir_response(resource, 200, {"Location": location,
                                             "ETag": f'W/"{head.version}"'})  # fmt: skip

    @r.put("/{resource_type}", summary="Conditional update (PUT Type?search)")
    async def conditional_update(request: Request, resource_type: str) -> Response:
        body = await _json_body(request)
        entry = Entry(0, "PUT", _type(resource_type), None, _object(body), None,
                      _if_match(request), condition=_condition(request))  # fmt: skip
        who = await principal(request)
        outcome = await run_in_threadpool(bundles.conditional, who, entry, _now_ms())
        if outcome.written is None:  # pragma: no cover - an update writes or raises
            raise NotFoundError("no such resource")
        return _written(request, outcome.written, outcome.status)

    @r.delete("/{resource_type}", summary="Conditional delete (one match)")
    async def conditional_delete(request: Request, resource_type: str) -> Response:
        entry = Entry(0, "DELETE", _type(resource_type), None, None, None, _if_match(request),
                      condition=_condition(request))  # fmt: skip
        who = await principal(request)
        outcome = await run_in_threadpool(bundles.conditional, who, entry, _now_ms())
        written = outcome.written
        headers = {} if written is None else {"ETag": f'W/"{written.version}"'}
        return Response(status_code=204, headers=headers)


def _instance_routes(r: APIRouter, fhir: FhirService, principal: PrincipalDependency) -> None:
    """Read, update, delete, history and vread of one resource."""

    @r.get("/{resource_type}/{record_id}", summary="Read")
    async def read(request: Request, resource_type: str, record_id: str) -> Response:
        who = await principal(request)
        resource = await run_in_threadpool(
            fhir.read, who, _type(resource_type), record_id, _now_ms()
        )
        meta = resource["meta"]
        return fhir_response(
            resource,
            200,
            {"ETag": f'W/"{meta["versionId"]}"', "Last-Modified": meta["lastUpdated"]},
        )

    @r.put("/{resource_type}/{record_id}", summary="Update (If-Match: version-aware)")
    async def update(request: Request, resource_type: str, record_id: str) -> Response:
        body = await _json_body(request)
        if_match = _if_match(request)
        who = await principal(request)
        written = await run_in_threadpool(
            lambda: fhir.update(
                who, _type(resource_type), record_id, body, if_match=if_match, now_ms=_now_ms()
            )
        )
        return _written(request, written, 200)

    @r.delete("/{resource_type}/{record_id}", summary="Delete (logical: history is kept)")
    async def delete(request: Request, resource_type: str, record_id: str) -> Response:
        who = await principal(request)
        version = await run_in_threadpool(
            fhir.delete, who, _type(resource_type), record_id, _now_ms()
        )
        headers = {} if version is None else {"ETag": f'W/"{version}"'}
        return Response(status_code=204, headers=headers)

    @r.get("/{resource_type}/{record_id}/_history", summary="Instance history")
    async def history(request: Request, resource_type: str, record_id: str) -> Response:
        who = await principal(request)
        entries = await run_in_threadpool(
            fhir.history, who, _type(resource_type), record_id, _now_ms()
        )
        return fhir_response(_history_bundle(request, entries))

    @r.get("/{resource_type}/{record_id}/_history/{version}", summary="Version read")
    async def vread(request: Request, resource_type: str, record_id: str, version: str) -> Response:
        check_id(record_id)
        if not version.isdigit() or len(version) > 12:
            raise NotFoundError("no such version")
        who = await principal(request)
        resource = await run_in_threadpool(
            fhir.vread, who, _type(resource_type), record_id, int(version), _now_ms()
        )
        return fhir_response(resource, 200, {"ETag": f'W/"{version}"'})

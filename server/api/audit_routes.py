"""The audit trail for auditors: GET /api/audit (JSON pages) and GET /api/audit.csv (export).

Auditor accounts only (access.require_auditor). Filters: server/audit_search.py. Newest first;
each page says where the next one starts (`next`, a stream id, passed back as `before`). A
search of the audit is itself audited (`audit.search` / `audit.export`). The application has no
route that deletes or trims the stream: retention and archiving are docs/deployment.md's.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server import audit_search as search
from server.api.security_audit import audit_principal
from server.auth import access
from server.auth.middleware import principal
from server.params import parse_int

EXPORT_MAX_ROWS = 100_000


def _query(request: web.Request) -> search.AuditQuery:
    return search.parse_query({k: request.query.get(k, "") for k in search.QUERY_FIELDS})


async def audit_page(request: web.Request) -> web.Response:
    who = principal(request)
    access.require_auditor(who)
    query = _query(request)
    limit = parse_int(request.query.get("limit", "100"), "limit", minimum=1,
                      maximum=search.MAX_LIMIT)
    before = search.parse_cursor(request.query.get("before", ""))
    store = request.app[appkeys.STORE]
    page = await search.search(store, await search.resolve(store, query), before=before,
                               limit=limit)
    await audit_principal(request, who, "audit.search", query=request.query_string[:500],
                          returned=len(page.events))
    return web.json_response({
        "events": [search.event_view(e) for e in page.events], "next": page.next,
        "scanned": page.scanned, "query": query.public(),
    })


async def audit_csv(request: web.Request) -> web.StreamResponse:
    """Every matching event as CSV (newest first), streamed page by page; at most
    EXPORT_MAX_ROWS rows (or `limit`)."""
    who = principal(request)
    access.require_auditor(who)
    query = _query(request)
    limit = parse_int(request.query.get("limit", str(EXPORT_MAX_ROWS)), "limit", minimum=1,
                      maximum=EXPORT_MAX_ROWS)
    before = search.parse_cursor(request.query.get("before", ""))
    store = request.app[appkeys.STORE]
    query = await search.resolve(store, query)
    await audit_principal(request, who, "audit.export", query=request.query_string[:500])
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="huizhen-audit.csv"',
    })
    await response.prepare(request)
    await response.write(("\ufeff" + search.csv_header()).encode())  # BOM: Excel reads UTF-8
    written = 0
    while written < limit:
        page = await search.search(store, query, before=before,
                                   limit=min(1000, limit - written))
        if page.events:
            await response.write(search.csv_rows(page.events).encode())
            written += len(page.events)
        if page.next is None:
            break
        before = page.next
    await response.write_eof()
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/api/audit", audit_page)
    app.router.add_get("/api/audit.csv", audit_csv)

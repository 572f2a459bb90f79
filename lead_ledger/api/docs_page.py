"""`GET /docs`: the OpenAPI document rendered by Redoc, served from the package itself.

Redoc's standalone bundle ships in `docs_assets/` (MIT, its licence files beside it), so the
page works offline and behind firewalls: no CDN, no font service. Redoc 2 renders OpenAPI 3.1.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from aiohttp import web

routes = web.RouteTableDef()

_ASSETS: Final = files("lead_ledger.api") / "docs_assets"
# Read once: a page and a script that change only with the package.
_PAGE: Final = (_ASSETS / "index.html").read_bytes()
_REDOC: Final = (_ASSETS / "redoc.standalone.js").read_bytes()
# A day: the bundle changes only when lead-ledger is upgraded, and the page names no version.
_CACHE: Final = "public, max-age=86400"


@routes.get("/docs")
async def docs(_request: web.Request) -> web.Response:
    """The API reference page."""
    return web.Response(body=_PAGE, content_type="text/html", charset="utf-8")


@routes.get("/docs/redoc.standalone.js")
async def redoc_bundle(_request: web.Request) -> web.Response:
    """Redoc's standalone bundle, for the page."""
    return web.Response(
        body=_REDOC,
        content_type="text/javascript",
        charset="utf-8",
        headers={"Cache-Control": _CACHE},
    )

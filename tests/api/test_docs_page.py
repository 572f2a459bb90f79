"""`GET /docs`: the page and the Redoc bundle it loads, both served by the app itself."""

from __future__ import annotations

from tests.support import Client


async def test_docs_page_loads_the_shipped_redoc_and_the_document(client: Client) -> None:
    """The page names only this server's own URLs: the bundle and /openapi.json, no CDN."""
    page = await client.get("/docs")
    assert (page.status, page.content_type) == (200, "text/html")
    html = await page.text()
    assert '<script src="/docs/redoc.standalone.js"></script>' in html
    assert 'Redoc.init("/openapi.json"' in html
    assert "https://" not in html
    assert "http://" not in html

    bundle = await client.get("/docs/redoc.standalone.js")
    assert (bundle.status, bundle.content_type) == (200, "text/javascript")
    assert bundle.headers["Cache-Control"] == "public, max-age=86400"
    assert len(await bundle.read()) > 500_000

"""/docs in a real headless Chromium (Debian's package), against a real `serve`: the page renders
the operation list from the document, with nothing but the server to load from."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from tests.support import serve_process, stop, until_ready


def _chromium() -> str:
    """The browser's path. CI installs Chromium (.ci/run), so there its absence is a failure;
    elsewhere the test says how to get it and is skipped."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("no Chromium: apt-get install chromium to run the browser check")


async def test_the_docs_page_renders_the_operations_in_a_browser(database_url: str) -> None:
    """Chromium loads /docs, runs the shipped Redoc on /openapi.json, and the rendered page
    lists operations of every API: native, admin, each vendor's, and ops."""
    browser = _chromium()
    served = serve_process(database_url)
    try:
        await until_ready(served)
        process = await asyncio.create_subprocess_exec(
            browser,
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--virtual-time-budget=20000",  # let the page's scripts run to the end
            "--dump-dom",
            f"{served.base_url}/docs",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        stop(served)
    assert process.returncode == 0, err.decode()[-2000:]
    dom = out.decode()
    for summary in (
        "List leads, filtered, in lead_id order",
        "The account&#39;s bulk jobs, newest first, filtered",
        "Flexydial login: the user&#39;s token",
        "Liveness: the process serves HTTP",
    ):
        assert summary.replace("&#39;", "'") in dom or summary in dom, summary
    assert "/v1/admin/accounts" in dom
    assert "Something went wrong" not in dom  # Redoc's own error page

"""A path no route takes, or a method a route lacks: 404 or 405 in the shape of the API the path
belongs to, never aiohttp's plain text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Client

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "status", "content_type", "body"),
    [
        (
            "GET",
            "/v1/nothing",
            404,
            PROBLEM,
            {"type": "about:blank", "title": "Not Found", "status": 404,
             "detail": "no route GET /v1/nothing"},
        ),
        (
            "DELETE",
            "/v1/leads",
            405,
            PROBLEM,
            {"type": "about:blank", "title": "Method Not Allowed", "status": 405,
             "detail": "DELETE is not allowed on /v1/leads"},
        ),
        ("GET", "/nowhere", 404, PROBLEM, None),
        ("GET", "/api/nothing/", 404, "application/json", {"detail": "Not found."}),
        (
            "GET",
            "/api/generate-token/",
            405,
            "application/json",
            {"detail": 'Method "GET" not allowed.'},
        ),
        (
            "GET",
            "/ca_apis/Nothing",
            404,
            "application/json",
            {"status": "error", "message": "Not Found"},
        ),
        (
            "GET",
            "/ca_apis/AddCampaignData",
            405,
            "application/json",
            {"status": "error", "message": "Method Not Allowed"},
        ),
        (
            "GET",
            "/cloudAgentRestAPI/index.php/Nothing",
            404,
            "application/json",
            {"status": "error", "message": "Not Found"},
        ),
        (
            "GET",
            "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json",
            405,
            "application/json",
            {"status": "error", "message": "Method Not Allowed"},
        ),
        (
            "GET",
            "/vicidial/leads/nothing",
            404,
            "application/json",
            {"message": "No HTTP resource was found that matches the request URI"
             " '/vicidial/leads/nothing'.", "lead_errors": 0, "lead_ids": []},
        ),
        (
            "GET",
            "/vicidial/leads/archive",
            405,
            "application/json",
            {"message": "The requested resource does not support http method 'GET'.",
             "lead_errors": 0, "lead_ids": []},
        ),
    ],
)  # fmt: skip
async def test_unmatched_requests_answer_in_the_api_s_own_shape(
    client: Client, method: str, path: str, status: int, content_type: str, body: Any
) -> None:
    """The status, the content type and the body of each API's own not-found answer; a 405
    names the methods the route has in `Allow`."""
    response = await client.request(method, path)
    assert (response.status, response.content_type) == (status, content_type)
    answer = await response.json(content_type=None)
    if body is not None:
        assert answer == body
    if status == 405:
        allowed = response.headers["Allow"].split(",")
        assert allowed
        assert method not in allowed

"""The baseline of bench/add_data.py: a bare aiohttp + asyncpg endpoint that inserts the
request's body as one row, in its own transaction, and answers 200. It checks nothing,
projects nothing and seals nothing: what one request costs with the same server stack (uvloop,
aiohttp, an asyncpg pool of the same size as `serve`'s) and a durable commit.

    .venv/bin/python bench/bare_endpoint.py --port 8090 --database-url postgresql://...

POST /ingest stores the body; GET /healthz answers 200 once the pool is open.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Final

import asyncpg
import uvloop
from aiohttp import web

POOL: Final = web.AppKey("pool", asyncpg.Pool)
CREATE: Final = """
CREATE TABLE IF NOT EXISTS bare_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT: Final = "INSERT INTO bare_requests (body) VALUES ($1)"
OK: Final = b'{"status":"ok"}'


async def ingest(request: web.Request) -> web.Response:
    body = await request.read()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute(INSERT, body)
    return web.Response(body=OK, content_type="application/json")


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def app(database_url: str, pool_max: int) -> web.Application:
    application = web.Application()

    async def pool(application: web.Application) -> AsyncIterator[None]:
        opened = await asyncpg.create_pool(database_url, min_size=2, max_size=pool_max)
        async with opened.acquire() as conn:
            await conn.execute(CREATE)
        application[POOL] = opened
        yield
        await opened.close()

    application.cleanup_ctx.append(pool)
    application.router.add_post("/ingest", ingest)
    application.router.add_get("/healthz", healthz)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool", type=int, default=10, help="the pool's size (serve's default)")
    args = parser.parse_args()
    web.run_app(
        app(args.database_url, args.pool),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()

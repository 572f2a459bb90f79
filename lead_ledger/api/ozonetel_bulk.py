"""Placeholder: routes are added by the module's implementation."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()

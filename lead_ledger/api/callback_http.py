"""HTTP for callbacks: the session the dispatcher posts with, and the poster it is given.

The dispatcher checks a callback host before each attempt (`callbacks.refusal`), but aiohttp
resolves the host again when it connects: a name whose DNS answer changes between the two (DNS
rebinding, or a record with a short TTL pointing at an internal address) would reach a private
address the check never saw. So, unless private targets are allowed, the session resolves
through `PublicOnlyResolver`, which applies the same rule to the addresses it is about to
connect to. URLs with an IP address for a host are not resolved at all; `refusal` has checked
that address itself.

Redirects are not followed: each hop would be a URL nobody checked, and a hop whose host is an
IP address would not even pass the resolver. A receiver that answers 3xx has not taken the
callback; the attempt fails with that status and is retried like any other failure.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from lead_ledger.service import callbacks

CALLBACK_TIMEOUT: Final = aiohttp.ClientTimeout(total=10)


class PublicOnlyResolver(AbstractResolver):
    """The default resolver's answer, refused whole when any address in it is one a callback
    may not reach (as `callbacks.refusal` refuses a host with any such address)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if callbacks.forbidden_address(ipaddress.ip_address(result["host"].split("%", 1)[0])):
                # With an errno and strerror: aiohttp's connection error shows the strerror.
                reason = f"{callbacks.PRIVATE_TARGET} ({host} resolved to {result['host']})"
                raise OSError(errno.EACCES, reason)
        return results

    async def close(self) -> None:
        await self._inner.close()


def callback_session(*, allow_private: bool) -> aiohttp.ClientSession:
    """The session callbacks are posted with; it checks every address it connects to unless
    private targets are allowed."""
    if allow_private:
        return aiohttp.ClientSession(timeout=CALLBACK_TIMEOUT)
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver())
    return aiohttp.ClientSession(timeout=CALLBACK_TIMEOUT, connector=connector)


def poster(session: aiohttp.ClientSession) -> callbacks.Post:
    """POST a JSON body; the receiver's status (a redirect's own, unfollowed), or OSError when
    nothing answered."""

    async def post(url: str, body: bytes) -> int:
        headers = {"Content-Type": "application/json"}
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OSError(str(error) or type(error).__name__) from error

    return post

"""Serving an aiohttp app or low-level server of a test on a free loopback port."""

from aiohttp import web


async def start_on_loopback(runner: web.BaseRunner) -> int:
    """Set ``runner`` up and serve it on 127.0.0.1 at a port the kernel picks: that port.
    The caller cleans the runner up."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return site._server.sockets[0].getsockname()[1]

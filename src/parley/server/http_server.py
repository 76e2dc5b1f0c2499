"""The server's HTTP listener (``metrics_listen``), on the chat's event loop: ``/healthz``,
``/readyz`` and ``/metrics`` for a service manager, a load balancer and Prometheus.

Built on aiohttp's low-level runner rather than its own ``run_app``: the server owns the loop,
starts the listener after the chat and file ports are up, and stops it within a bound.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from parley.server.health import Readiness
from parley.server.metrics import ServerMetrics

log = logging.getLogger("parley.server")

# At shutdown, how long a scrape under way gets to finish, and how long stopping may take in all.
_SHUTDOWN_SECONDS = 1.0
_STOP_SECONDS = 3.0


async def stop_runner(runner: web.AppRunner, what: str, seconds: float = _STOP_SECONDS) -> None:
    """Close ``runner``'s ports and the requests under way within ``seconds``: a request that
    will not end must not keep the server from stopping. ``what`` names it in the warning.
    """
    try:
        await asyncio.wait_for(runner.cleanup(), seconds)
    except TimeoutError:
        log.warning("The %s did not stop within %g s; leaving it", what, seconds)


class HttpListener:
    """Serves health and metrics on one address; see :meth:`start` and :meth:`stop`."""

    def __init__(self, metrics: ServerMetrics, readiness: Readiness) -> None:
        self._metrics = metrics
        self._readiness = readiness
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        # No access log: a scrape every few seconds would bury everything else in it.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        self._started = False

    @property
    def port(self) -> int:
        """The bound port (useful when the setting asked for port 0)."""
        assert self._started, "HTTP listener not started"
        port: int = self._runner.addresses[0][1]
        return port

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host``:``port``. Raises OSError when it cannot be bound."""
        await self._runner.setup()
        self._started = True
        try:
            await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the port and any scrape under way, within a few seconds whatever happens."""
        if not self._started:
            return
        self._started = False
        await stop_runner(self._runner, "HTTP listener")

    async def _healthz(self, request: web.Request) -> web.Response:
        # The loop answered: the process is up. Whether it can serve is /readyz's question.
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        problem = await self._readiness.check()
        if problem is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {problem}\n")

    async def _metrics_page(self, request: web.Request) -> web.Response:
        # The classic text format, which every Prometheus reads (as the library's own
        # exporter answers a scraper that asks for nothing newer).
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

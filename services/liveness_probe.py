"""The liveness probe of a process that serves no HTTP (the projector, the triggers process): GET /livez on a
port of its own (--probe-port, MODELREG_PROBE_PORT), answered by its event loop.

Without one, a supervisor saw such a process as alive as long as it had not exited: one whose event loop was held
(a hung call outside asyncio, a runaway batch) applied nothing, carried out no automation, and was never restarted.
The API has the same probe on its own port (services/http/metrics.py). How far each projection is, is the API's
/healthz and /metrics to say: they read every replica's positions from PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from modelreg.services.bootstrap import NeverReached

PROBE_HOST = "0.0.0.0"  # the kubelet asks from outside the pod; /livez says nothing but "ok"


async def _livez(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


@contextlib.asynccontextmanager
async def liveness_probe(port: int | None, host: str = PROBE_HOST) -> AsyncIterator[None]:
    """/livez served on `port` while the body runs; nothing when `port` is None."""
    if port is None:
        yield
        return
    app = web.Application()
    app.router.add_get("/livez", _livez)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise ProbePortTaken(f"the liveness probe's port {port} cannot be served ({exc}): choose another") from exc
        yield
    finally:
        await runner.cleanup()


async def probed(port: int | None, main: Coroutine[Any, Any, None]) -> None:
    """`main` run with /livez served on `port`; not started when the port cannot be served."""
    try:
        async with liveness_probe(port):
            await main
    finally:
        main.close()  # a no-op once it ran; unstarted, it would be reported as never awaited


class ProbePortTaken(NeverReached):
    """A setting to change: the process exits with this one line."""

"""A TCP proxy in front of a server, for tests of a network that slows down or hangs: a partition, a failed-over
primary that never answers again. Nothing is closed when it hangs, as nothing is on a real network: the bytes just
stop arriving, both ways. Or the server stopped and started again (`stop_server`, `start_server`): connections cut,
new ones refused, then accepted again on the same port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        """`host` a name or address, or a folder holding the server's unix socket (PostgreSQL's `host=/dir`)."""
        self.upstream = (host, port)
        self.delay_s = 0.0  # added to every chunk, each way: a slow network or server
        self.client_spoke = asyncio.Event()  # set at each chunk a client sends (clear it to wait for the next)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self._port, "start() first"
        return self._port

    def hang(self) -> None:
        """From now on no byte goes through, either way, on connections open or new; none is closed."""
        self._flowing.clear()

    def resume(self) -> None:
        """The network back: what was held goes through."""
        self._flowing.set()

    def dsn(self, dsn: str) -> str:
        """`dsn` (a postgresql:// url to the upstream server) through this proxy."""
        parts = urlsplit(dsn)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")])
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def stop_server(self) -> None:
        """As if the server behind had stopped: its connections cut, new ones refused (nothing listens on the port)."""
        await self.close()

    async def start_server(self) -> None:
        """As if it had started again: connections accepted on the same port."""
        await self.start()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.upstream
        if host.startswith("/"):
            up_reader, up_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        else:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        self._writers += [writer, up_writer]
        for source, sink, spoke in ((reader, up_writer, self.client_spoke), (up_reader, writer, None)):
            pipe = asyncio.create_task(self._pipe(source, sink, spoke))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, spoke: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await source.read(65536):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                await self._flowing.wait()
                sink.write(chunk)
                if spoke is not None:
                    spoke.set()
                await sink.drain()
            sink.close()


@contextlib.asynccontextmanager
async def proxy_to_postgres(dsn: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    proxy = TcpProxy(query.get("host") or parts.hostname or "127.0.0.1", int(query.get("port") or parts.port or 5432))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()

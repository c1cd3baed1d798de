"""A job's output as its agent sends it: stdout and stderr in the order the job printed them, in whole lines, every
half second or 64 KiB, a bounded record of each stream, and bounded memory when the server is slower than the job.

One stream after the other, each flushed on its own, gave a traceback apart from the progress lines printed before
it: a job printing out, err, out, err came back as all of its stdout, then all of its stderr.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import Awaitable, Callable, Mapping

OUTPUT_FLUSH_S = 0.5
OUTPUT_FLUSH_BYTES = 64 * 1024
# Printed and not sent yet (read, or being sent), past which the job's pipes are not read: the job then waits on its
# prints, as it would on a slow terminal, rather than the agent holding its output in memory.
UNSENT_BYTES_HELD = 4 * OUTPUT_FLUSH_BYTES

Send = Callable[[str, str], Awaitable[object]]  # (stream, text)


class JobOutput:
    def __init__(self, send: Send, kept_bytes: int) -> None:
        self._send = send
        self._kept_bytes = kept_bytes
        self._segments: list[tuple[str, bytearray]] = []  # as they arrived; neighbours of one stream joined
        self._unsent = 0  # read and not taken to be sent
        self._sending = 0  # taken, and not sent yet
        self._ended: set[str] = set()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        # A character split between two reads is decoded whole with the second.
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._sent: dict[str, int] = {}

    async def capture(self, pipes: Mapping[str, asyncio.StreamReader | None]) -> None:
        """Read every pipe to its end (`{"STDOUT": ..., "STDERR": ...}`) and send all it printed, in order."""
        readers = [asyncio.create_task(self._read(stream, pipe)) for stream, pipe in pipes.items() if pipe]
        try:
            await self._send_until_ended({stream for stream, pipe in pipes.items() if pipe})
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _read(self, stream: str, pipe: asyncio.StreamReader) -> None:
        # Bytes, not lines: a line longer than asyncio's line limit (a progress bar without newlines) must not fail
        # the job.
        while True:
            while self._unsent + self._sending >= UNSENT_BYTES_HELD:
                self._room.clear()
                await self._room.wait()
            chunk = await pipe.read(OUTPUT_FLUSH_BYTES)
            if not chunk:
                self._ended.add(stream)
                self._arrived.set()
                return
            if self._segments and self._segments[-1][0] == stream:
                self._segments[-1][1].extend(chunk)
            else:
                self._segments.append((stream, bytearray(chunk)))
            self._unsent += len(chunk)
            if self._unsent >= OUTPUT_FLUSH_BYTES:
                self._arrived.set()

    async def _send_until_ended(self, streams: set[str]) -> None:
        loop = asyncio.get_running_loop()
        flushed_at = loop.time()
        while True:
            self._arrived.clear()  # before looking: what a reader adds from here on sets it again
            ended = self._ended >= streams
            if not ended and self._unsent < OUTPUT_FLUSH_BYTES:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), max(0.0, OUTPUT_FLUSH_S - (loop.time() - flushed_at)))
                ended = self._ended >= streams
            if ended or self._unsent >= OUTPUT_FLUSH_BYTES or loop.time() - flushed_at >= OUTPUT_FLUSH_S:
                ready = self._take_ready()
                self._sending = sum(len(data) for _, data in ready)
                for stream, data in ready:
                    for at in range(0, len(data), OUTPUT_FLUSH_BYTES):  # a request no larger than before
                        piece = data[at : at + OUTPUT_FLUSH_BYTES]
                        await self._send_text(stream, piece, final=False)
                        self._sending -= len(piece)
                flushed_at = loop.time()
                self._room.set()
            if ended and not self._segments:
                for stream in sorted(self._decoders):
                    await self._send_text(stream, b"", final=True)
                return

    def _take_ready(self) -> list[tuple[str, bytes]]:
        """What may go now, in order: all of it, but for the trailing part line of a stream still open (an unbuffered
        print arrives word by word), kept for its end unless 64 KiB in all came without one: kept then, part lines
        of two streams held the loop sending nothing and waiting for nothing."""
        last_of = {stream: at for at, (stream, _) in enumerate(self._segments)}
        crowded = self._unsent >= OUTPUT_FLUSH_BYTES
        ready: list[tuple[str, bytes]] = []
        kept: list[tuple[str, bytearray]] = []
        for at, (stream, data) in enumerate(self._segments):
            still_open = last_of[stream] == at and stream not in self._ended and not crowded
            end = _after_last_line_end(data) if still_open else len(data)
            if end:
                ready.append((stream, bytes(data[:end])))
            if end < len(data):
                kept.append((stream, data[end:]))
        self._segments = kept
        self._unsent = sum(len(data) for _, data in kept)
        return ready

    async def _send_text(self, stream: str, data: bytes, *, final: bool) -> None:
        decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")(errors="replace"))
        # A process may print U+0000, which the registry cannot store: shown as U+FFFD, like bad UTF-8.
        text = decoder.decode(data, final=final).replace("\x00", "\ufffd")
        sent = self._sent.get(stream, 0)
        if not text or sent >= self._kept_bytes:
            return
        sent = self._sent[stream] = sent + len(text.encode())
        if sent >= self._kept_bytes:
            text += (
                f"\n[modelreg agent: {stream.lower()} passed {self._kept_bytes:,} bytes; the rest of it is not kept]\n"
            )
        await self._send(stream, text)


def _after_last_line_end(buffer: bytearray) -> int:
    """Where the last complete line of `buffer` ends (by "\\n", or "\\r" as progress bars end theirs); 0: none."""
    return max(buffer.rfind(b"\n"), buffer.rfind(b"\r")) + 1

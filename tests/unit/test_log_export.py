"""A backup gives back every record of the log byte for byte, whoever wrote it."""

from __future__ import annotations

from pathlib import Path

from modelreg.events.codec import encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import LogPosition, LogRecord
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.runs import RunStarted, run_stream
from modelreg.services.log_transfer import export_log, import_log

OURS = Envelope.new(
    RunStarted(entity="acme", project="nature", run_id="r1"),
    stream=run_stream("acme", "nature", "r1"),
    actor=Actor(kind="user", id="alice"),
)


def record(key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> LogRecord:
    return LogRecord(LogPosition("", 0, 0), key, value, headers)


async def test_an_export_imported_gives_back_every_key_value_and_header_byte_for_byte(tmp_path: Path) -> None:
    written = [
        record(OURS.stream.encode(), encode(OURS), (("type", b"runs.run_started"), ("version", b"1"))),
        record(b"", b'{"type": "foreign"}', (("trace", b"\x00\xff"), ("source", b"mirror"))),
        record(b"\xff\xfe not UTF-8", b'{"type": "foreign"}'),  # a foreign producer's key
        record(b"model:m", b'{"a": 1, "a": 2}'),  # JSON that reads back as other bytes
        record(b"model:m", b"\x00 not even JSON \xff"),
        record(b"model:m", None),  # a tombstone
        record(None, b"{}"),
    ]
    source = InMemoryEventLog(partitions=1)
    await source.append_raw(written)
    backup = tmp_path / "log.jsonl.gz"
    assert await export_log(source, backup, lambda n: None) == len(written)

    target = InMemoryEventLog(partitions=1)
    assert await import_log(target, backup, lambda n: None) == len(written)
    assert [(r.key, r.value, r.headers) for r in target.partitions[0]] == [(r.key, r.value, r.headers) for r in written]

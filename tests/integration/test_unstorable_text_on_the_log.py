"""A record holding text PostgreSQL cannot store (a foreign producer's, or an old modelreg's) is kept on either
log byte for byte: the Postgres log keeps it as bytes, and projections decide what to show."""

from __future__ import annotations

from support.log_contents import all_records

from modelreg.events.log import EventLog, LogPosition, LogRecord


async def test_records_with_nul_and_lone_surrogates_are_kept_byte_for_byte(event_log: EventLog) -> None:
    records = [
        LogRecord(LogPosition("", 0, 0), b"model:a\x00b", b'{"payload": {"d": "a\\u0000b"}}', (("type", b"x\x00"),)),
        LogRecord(LogPosition("", 0, 0), b"model:\xed\xa0\x80", b'{"d": "\\ud800"}', (("type", b"\xff"),)),
        LogRecord(LogPosition("", 0, 0), b"model:c", b"\x00 not even JSON \xff"),
    ]
    await event_log.append_raw(records)

    kept = sorted(await all_records(event_log), key=lambda r: r.value or b"")
    assert [(r.key, r.value) for r in kept] == sorted([(r.key, r.value) for r in records], key=lambda kv: kv[1])

"""An event's schema does not change under the same version (docs/events.md, Schema versions). Records already on
the log were written against it: a constraint tightened without a version bump (and an upcaster) would
dead-letter them at the next rebuild, and consumers validating with our exported schemas would be told wrong.
So each event version's schema, descriptions left out, has a fingerprint kept in event_schema_fingerprints.json,
and this test compares.

A new event type or version is recorded with
    MODELREG_RECORD_EVENT_SCHEMAS=1 pytest tests/unit/test_event_schema_fingerprints.py
which adds missing fingerprints and never replaces one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from modelreg.events.catalog import all_event_classes
from modelreg.events.schemas import envelope_schema

RECORDED = Path(__file__).with_name("event_schema_fingerprints.json")
WORDING = {"description", "title", "$id", "examples"}  # prose: changing it changes no record's validity


def _without_wording(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_wording(value) for key, value in node.items() if key not in WORDING}
    if isinstance(node, list):
        return [_without_wording(item) for item in node]
    return node


def _fingerprints() -> dict[str, str]:
    return {
        f"{cls.type}.v{cls.version}": hashlib.sha256(
            orjson.dumps(_without_wording(envelope_schema(cls)), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        for cls in all_event_classes()
    }


def test_no_event_changes_its_schema_without_a_new_version() -> None:
    recorded: dict[str, str] = orjson.loads(RECORDED.read_bytes()) if RECORDED.exists() else {}
    current = _fingerprints()
    if os.environ.get("MODELREG_RECORD_EVENT_SCHEMAS"):
        RECORDED.write_bytes(
            orjson.dumps({**current, **recorded}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        recorded = {**current, **recorded}
    changed = sorted(key for key, fingerprint in current.items() if recorded.get(key, fingerprint) != fingerprint)
    assert not changed, (
        f"{', '.join(changed)}: the schema changed under the same version. Records already on the log were "
        "written against the old one, and consumers validate with the exported schema of that version: bump "
        "the event's version and add an upcaster in events/catalog.py (docs/events.md, Schema versions)."
    )
    unrecorded = sorted(current.keys() - recorded.keys())
    assert not unrecorded, (
        f"{', '.join(unrecorded)}: not recorded yet; run MODELREG_RECORD_EVENT_SCHEMAS=1 pytest {__file__}"
    )

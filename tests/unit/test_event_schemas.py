"""Other services consume the topic with the exported JSON Schemas, not with our code."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
from click.testing import CliRunner
from support.history import registry_history

from modelreg.events.catalog import EVENT_TYPES
from modelreg.events.codec import encode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import ApiKeyIssued, ApiKeyRevoked, principal_stream
from modelreg.events.runs import RunSynced, run_stream
from modelreg.services.cli import main


def test_the_export_command_writes_one_schema_per_event_type(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{t}.v{c.version}.json" for t, c in EVENT_TYPES.items())


def identity_events() -> list[Envelope]:
    admin = Actor(kind="user", id="admin")
    issued = ApiKeyIssued(key_id="0123456789ab", principal=admin, key_sha256="f" * 64, role="admin")
    revoked = ApiKeyRevoked(key_id="0123456789ab", principal=admin)
    return [Envelope.new(p, stream=principal_stream(admin), actor=admin) for p in (issued, revoked)]


def offline_events() -> list[Envelope]:
    alice = Actor(kind="user", id="alice")
    synced = RunSynced(entity="acme", project="nature", run_id="plane-1", commands=9, recorded_on="laptop")
    return [Envelope.new(synced, stream=run_stream("acme", "nature", "plane-1"), actor=alice)]


def test_exported_schemas_validate_real_serialized_events_and_reject_others(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["schemas", "export", str(tmp_path)])
    schemas = {p.name: jsonschema.Draft202012Validator(json.loads(p.read_text())) for p in tmp_path.iterdir()}
    seen = set()
    for event in [*registry_history(3000), *identity_events(), *offline_events()]:
        wire = orjson.loads(encode(event))
        schemas[f"{event.type}.v{event.version}.json"].validate(wire)
        seen.add(event.type)
        other = next(s for name, s in schemas.items() if not name.startswith(event.type + "."))
        assert not other.is_valid(wire)
    assert seen == set(EVENT_TYPES)

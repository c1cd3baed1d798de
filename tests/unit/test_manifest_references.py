"""Manifest entries may be references (schema v2 of artifacts.version_logged); v1 events still read."""

from __future__ import annotations

import hashlib

import orjson
from support.history import registry_history

from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry
from modelreg.events.codec import decode, encode
from modelreg.services.commands.handlers import manifest_digest

DIGEST = "sha256:" + "ab" * 32


def test_a_v1_version_logged_event_reads_as_v2_with_no_references() -> None:
    event = next(e for e in registry_history(50) if e.type == ArtifactVersionLogged.type)
    wire = orjson.loads(encode(event))
    wire["version"] = 1
    for entry in wire["payload"]["manifest"]:
        del entry["ref"]  # as a v1 producer wrote it
    read = decode(orjson.dumps(wire))
    assert read.version == 2
    assert read.payload == event.payload
    assert all(entry.ref is None for entry in read.payload.manifest)  # type: ignore[attr-defined]


def test_plain_files_keep_the_version_digest_they_had_and_a_reference_changes_it() -> None:
    plain = (ManifestEntry(path="model.pt", size=3, digest=DIGEST),)
    before_references = "sha256:" + hashlib.sha256(f"model.pt\t3\t{DIGEST}\n".encode()).hexdigest()
    assert manifest_digest(plain) == before_references
    elsewhere = (ManifestEntry(path="model.pt", size=3, digest=DIGEST, ref="https://example.org/model.pt"),)
    assert manifest_digest(elsewhere) != manifest_digest(plain)

"""A batch of the registry projection numbers the versions it logs from counters read once: each version logged
takes the next ordinal, and the statement that moves its aliases off the collection's other versions stays itself.
Older clients logged a version with its aliases in one event; two of one collection in a batch made the batch
fail (its alias statement was rewritten into a numbered insert) and every replay of such a log went event by
event."""

from __future__ import annotations

import hashlib
from uuid import uuid4

from modelreg.events.artifacts import ArtifactVersionLogged, ManifestEntry, artifact_stream
from modelreg.events.envelope import Actor, Envelope
from modelreg.projections import registry
from modelreg.projections.registry import RegistryProjection

KEY = ("acme", "fraud", "classifier")


def _logged_with(alias: str) -> Envelope:
    digest = "sha256:" + hashlib.sha256(alias.encode()).hexdigest()
    payload = ArtifactVersionLogged(
        artifact_version_id=uuid4(),
        entity=KEY[0],
        project=KEY[1],
        name=KEY[2],
        artifact_type="model",
        digest=digest,
        manifest=(ManifestEntry(path="weights.bin", size=3, digest=digest),),
        aliases=(alias,),
    )
    return Envelope.new(payload, stream=artifact_stream(*KEY), actor=Actor(kind="user", id="alice"))


def test_two_versions_logged_with_their_aliases_in_one_batch_are_numbered_in_turn_and_move_their_aliases() -> None:
    projection = RegistryProjection()
    projection._counters = {KEY: 7}  # what `prepare` reads from the collection's row

    statements = [
        statement for _, statement in projection.batch_statements([_logged_with("best"), _logged_with("best")])
    ]

    numbered = [s for s in statements if s.sql == registry._VERSION_NUMBERED]
    assert [s.args[-1] for s in numbered] == [7, 8]
    moved = [s for s in statements if s.sql == registry._ALIASES_TAKEN]
    assert [len(s.args) for s in moved] == [1, 1]
    counted = [s for s in statements if s.sql == registry._COLLECTION_COUNTED]
    assert [s.args[4] for s in counted] == [9]

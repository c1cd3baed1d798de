"""What one caller may read: the visibility set, computed once per request and handed to every read path.

An entity (a team) or a registered model may be private. A private scope is read by those holding a grant
on it (any role; `registry` counts for every model) and by admin keys; it is hidden from everyone else.
A version of a private entity that is linked into a registered model the caller reads is readable too
(publishing into a registry), but nothing else of its project is.

Readable is the set of *hidden* scopes, not the readable ones: an installation has a few private scopes,
so the SQL filters are `entity <> ALL($hidden)` on rows the query reads anyway (no scan, no extra join), and
a caller for whom nothing is hidden (an admin, a one-team setup) runs the same statements as before.

Identity records (`identity.*`: keys issued and revoked, roles granted and revoked, scopes made private or public)
say who holds which key, role and label: what `principals` shows installation admins only. So they are read, in the
audit log and live events, by installation admins, and by a principal on its own stream (`principal:<kind>:<id>`,
as `viewer { access }` shows it); the records about a scope (SCOPE_RECORDS: its grants, it made private or public)
also by the admins of that scope, who may make them (a team admin grants roles in the team); to anyone else they are
not there. Keys' records stay with installation admins and the key's principal: their labels name people and hosts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from modelreg.events.automations import watched_scope
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import principal_stream

# The types of identity records; the audit log's filter is the same prefix in SQL (audit_queries.py).
IDENTITY_TYPES = "identity."
# The identity records about the scope in their payload's `scope`, which that scope's admins read.
SCOPE_RECORDS = (
    "identity.role_granted",
    "identity.role_revoked",
    "identity.scope_made_private",
    "identity.scope_made_public",
)


def scope_of(payload: Mapping[str, Any]) -> str | None:
    """The scope an event's payload is about: its registered model, else its entity, else the private or
    granted scope it names (`identity.role_granted` on entity:x), else what an automation's trigger watches.
    None: about no entity or model.

    The audit log's `scope` column is the same expression in SQL (AUDIT_SCOPE_V2): keep them together."""
    if isinstance(model := payload.get("registered_model"), str):
        return f"model:{model}"
    if isinstance(entity := payload.get("entity"), str):
        return f"entity:{entity}"
    scope = payload.get("scope")
    if isinstance(scope, str) and scope.startswith(("entity:", "model:")):
        return scope
    trigger = payload.get("trigger")
    if isinstance(trigger, Mapping):  # an automation's creation: what it watches, else where it launches jobs
        action = payload.get("action")
        return watched_scope(trigger, action if isinstance(action, Mapping) else {})
    return None


def limited_to(payload: Mapping[str, Any]) -> list[str]:
    """The scopes a key is limited to (`identity.api_key_issued`): a caller who may not read one of them does not
    see the record, which names it. The audit log's filter reads `scopes` the same way (audit_queries.py)."""
    scopes = payload.get("scopes")
    return [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list | tuple) else []


def launched_in(payload: Mapping[str, Any]) -> str | None:
    """The entity an automation's creation or change launches jobs in, when it names one: its action (a job's source
    and config) is that team's, so the record is read only by who reads it too, besides what it watches (scope_of),
    as the automation itself is (`Readable.automation`). The audit log's filter is the same expression in SQL
    (audit_queries.py)."""
    action = payload.get("action")
    if not isinstance(payload.get("trigger"), Mapping) or not isinstance(action, Mapping):
        return None
    entity = action.get("entity")
    if action.get("kind") != "launch" or not isinstance(entity, str) or "${" in entity:
        return None
    return f"entity:{entity}"


AUDIT_SCOPE_V1 = """
ALTER TABLE audit_log ADD COLUMN scope text GENERATED ALWAYS AS (
    CASE WHEN jsonb_typeof(payload -> 'registered_model') = 'string' THEN 'model:' || (payload ->> 'registered_model')
         WHEN jsonb_typeof(payload -> 'entity') = 'string' THEN 'entity:' || (payload ->> 'entity')
         WHEN payload ->> 'scope' LIKE 'entity:%' OR payload ->> 'scope' LIKE 'model:%' THEN payload ->> 'scope'
         WHEN jsonb_typeof(payload -> 'trigger' -> 'registered_model') = 'string'
              THEN 'model:' || (payload -> 'trigger' ->> 'registered_model')
         WHEN jsonb_typeof(payload -> 'trigger' -> 'entity') = 'string'
              THEN 'entity:' || (payload -> 'trigger' ->> 'entity')
    END
) STORED;
"""

# V2: an automation watching everything is about the entity it launches jobs in (scope_of). Redefining a
# generated column rewrites the table once, at the upgrade.
AUDIT_SCOPE_V2 = """
ALTER TABLE audit_log DROP COLUMN scope;
ALTER TABLE audit_log ADD COLUMN scope text GENERATED ALWAYS AS (
    CASE WHEN jsonb_typeof(payload -> 'registered_model') = 'string' THEN 'model:' || (payload ->> 'registered_model')
         WHEN jsonb_typeof(payload -> 'entity') = 'string' THEN 'entity:' || (payload ->> 'entity')
         WHEN payload ->> 'scope' LIKE 'entity:%' OR payload ->> 'scope' LIKE 'model:%' THEN payload ->> 'scope'
         WHEN jsonb_typeof(payload -> 'trigger' -> 'registered_model') = 'string'
              THEN 'model:' || (payload -> 'trigger' ->> 'registered_model')
         WHEN jsonb_typeof(payload -> 'trigger' -> 'entity') = 'string'
              THEN 'entity:' || (payload -> 'trigger' ->> 'entity')
         WHEN jsonb_typeof(payload -> 'trigger') = 'object' AND payload -> 'action' ->> 'kind' = 'launch'
              AND jsonb_typeof(payload -> 'action' -> 'entity') = 'string'
              AND strpos(payload -> 'action' ->> 'entity', '${') = 0
              THEN 'entity:' || (payload -> 'action' ->> 'entity')
    END
) STORED;
"""


@dataclass(frozen=True)
class Readable:
    """The private entities and registered models one caller may not read."""

    hidden_entities: frozenset[str] = frozenset()
    hidden_models: frozenset[str] = frozenset()
    # The streams whose identity records the caller reads; None: every one (an installation admin).
    identity_streams: frozenset[str] | None = None
    # The scopes the caller is an admin of, whose SCOPE_RECORDS it reads ("registry": every model but those of
    # `not_administered`, where a grant below admin overrides it).
    administered: frozenset[str] = frozenset()
    not_administered: frozenset[str] = frozenset()

    @staticmethod
    def of(
        *,
        admin: bool,
        grants: Mapping[str, str],
        private: Iterable[str],
        limits: Iterable[str] = (),
        principal: Actor | None = None,
        administered: Iterable[str] = (),
        not_administered: Iterable[str] = (),
    ) -> Readable:
        """`admin`: the key is an installation admin's; `grants`: scope -> role of its principal; `private`:
        the private scopes; `limits`: the scopes the key is limited to (empty: not limited); `principal`: whose
        key it is (it reads its own identity records); `administered`, `not_administered`: as the fields say
        (the roles a Caller holds, services/commands/access.py)."""
        limited = frozenset(limits)

        def within_limits(scope: str) -> bool:
            return not limited or scope in limited or (scope.startswith("model:") and "registry" in limited)

        def reads(scope: str) -> bool:
            granted = scope in grants or (scope.startswith("model:") and "registry" in grants)
            return (admin or granted) and within_limits(scope)

        hidden = [scope for scope in private if not reads(scope)]
        # As for `principals`: an admin key limited to scopes is no installation admin.
        own = frozenset({principal_stream(principal)} if principal is not None else ())
        return Readable(
            frozenset(s.removeprefix("entity:") for s in hidden if s.startswith("entity:")),
            frozenset(s.removeprefix("model:") for s in hidden if s.startswith("model:")),
            None if admin and not limited else own,
            frozenset(administered),
            frozenset(not_administered),
        )

    @property
    def hides_nothing(self) -> bool:
        """No private entity or model is hidden (identity records are no entity's: see `identity_record`)."""
        return not self.hidden_entities and not self.hidden_models

    def entity(self, name: str) -> bool:
        return name not in self.hidden_entities

    def model(self, name: str) -> bool:
        return name not in self.hidden_models

    def scope(self, scope: str | None) -> bool:
        if scope is None:
            return True
        kind, _, name = scope.partition(":")
        return not (
            (kind == "entity" and name in self.hidden_entities) or (kind == "model" and name in self.hidden_models)
        )

    def identity_record(self, type_: str, stream: str, payload: Mapping[str, Any]) -> bool:
        """Whether the caller reads this record as far as identity goes: any record but an identity one, those
        on a stream it reads identity records of, and those about a scope it administers."""
        if not type_.startswith(IDENTITY_TYPES) or self.identity_streams is None:
            return True
        if type_ in SCOPE_RECORDS and isinstance(scope := payload.get("scope"), str) and self.administers(scope):
            return True
        return stream in self.identity_streams

    def administers(self, scope: str) -> bool:
        """Whether the caller is an admin of `scope` (installation admins aside)."""
        if scope in self.administered:
            return True
        return scope.startswith("model:") and "registry" in self.administered and scope not in self.not_administered

    def event(self, envelope: Envelope) -> bool:
        payload = envelope.payload.public_dump()
        if not self.identity_record(envelope.type, envelope.stream, payload):
            return False
        return (
            self.scope(scope_of(payload))
            and all(self.scope(scope) for scope in limited_to(payload))
            and self.scope(launched_in(payload))
        )

    def automation(self, trigger: Mapping[str, Any], action: Mapping[str, Any]) -> bool:
        """An automation is read by who reads what it watches and where it launches jobs."""
        watched = [scope_of({"trigger": trigger})]
        if action.get("kind") == "launch" and isinstance(action.get("entity"), str) and "${" not in action["entity"]:
            watched.append(f"entity:{action['entity']}")
        return all(self.scope(scope) for scope in watched)

    def hidden_scopes(self) -> list[str]:
        """For SQL over the audit log's scope column."""
        return sorted([f"entity:{e}" for e in self.hidden_entities] + [f"model:{m}" for m in self.hidden_models])

    def identity_streams_read(self) -> list[str] | None:
        """For SQL over the audit log: the streams whose identity records the caller reads; None: every one."""
        return None if self.identity_streams is None else sorted(self.identity_streams)

    def administered_scopes(self) -> tuple[list[str], list[str]]:
        """For SQL over the audit log: `administered` and `not_administered`."""
        return sorted(self.administered), sorted(self.not_administered)


EVERYTHING = Readable()


class Visibility:
    """The private scopes, and the one look-up a version's readability needs beyond its row."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def private_scopes(self) -> frozenset[str]:
        return frozenset(r["scope"] for r in await self.pool.fetch("SELECT scope FROM private_scopes"))

    async def readable_versions(self, rows: Iterable[dict[str, Any]], readable: Readable) -> list[dict[str, Any]]:
        """The artifact versions among `rows` the caller may read: those of entities it reads, and the others
        that are linked into a registered model it reads (one query for a whole batch)."""
        rows = list(rows)
        if readable.hides_nothing:
            return rows
        doubtful = [r["id"] for r in rows if not readable.entity(r["entity"])]
        published = await self.published(doubtful, readable) if doubtful else set()
        return [r for r in rows if readable.entity(r["entity"]) or r["id"] in published]

    async def published(self, version_ids: list[UUID], readable: Readable) -> set[UUID]:
        """Which of these versions are linked into a registered model the caller reads."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT artifact_version_id FROM model_versions "
            "WHERE artifact_version_id = ANY($1::uuid[]) AND registered_model <> ALL($2::text[])",
            version_ids,
            sorted(readable.hidden_models),
        )
        return {r["artifact_version_id"] for r in rows}

    async def blob_readable(self, digest: str, readable: Readable) -> bool:
        """A file is readable when a live version the caller may read lists it (a GIN index on the manifests'
        digests finds the versions: FILES_V2). To a caller for whom nothing is hidden, a file no version lists
        yet is readable too; one that only deleted versions list is read by no one (see blobs_hidden)."""
        if readable.hides_nothing:
            return not await self.blobs_hidden([digest], readable)
        return await self.pool.fetchval(
            f"SELECT {_held_by_a_readable_version('$1::text')}",
            digest,
            sorted(readable.hidden_entities),
            sorted(readable.hidden_models),
        )

    async def blob_listed(self, digest: str) -> bool:
        """Whether a live version lists the file, whoever may read it."""
        return await self.pool.fetchval(f"SELECT {_held_by_a_readable_version('$1::text')}", digest, [], [])

    async def blob_hidden(self, digest: str, readable: Readable) -> bool:
        """Whether a stored file is held only by versions the caller may not read: to that caller the store
        answers as if it did not have it (whether a private team holds some exact bytes is theirs to know), and
        listing it in a version needs its bytes (require_stored_files). A file no version lists yet is not
        hidden here; services/http/blob_visibility.py keeps it out of sight of /blobs lookups too."""
        return digest in await self.blobs_hidden([digest], readable)

    async def blobs_hidden(self, digests: Collection[str], readable: Readable) -> set[str]:
        """Which of `digests` are hidden from the caller (see blob_hidden), in one query. A deleted version is
        read by no one: a file only deleted versions list is hidden from every caller, admins too, so that it is
        no longer served through them (nor through a version listing its digest without its bytes)."""
        if not digests:
            return set()
        wanted = sorted(set(digests))
        if readable.hides_nothing:
            # Only a deleted version can hide a file from this caller: the few deleted ones are asked first,
            # through their own small index (FILES_V4), so that the common answer costs one probe.
            wanted = [
                r["d"]
                for r in await self.pool.fetch(
                    "SELECT DISTINCT d FROM artifact_versions, unnest(file_digests) AS d "
                    "WHERE deleted_at IS NOT NULL AND file_digests && $1::text[] AND d = ANY($1::text[])",
                    wanted,
                )
            ]
            if not wanted:
                return set()
        rows = await self.pool.fetch(
            "SELECT d FROM unnest($1::text[]) AS d "
            "WHERE EXISTS (SELECT 1 FROM artifact_versions WHERE file_digests @> ARRAY[d]) "
            f"AND NOT {_held_by_a_readable_version('d')}",
            wanted,
            sorted(readable.hidden_entities),
            sorted(readable.hidden_models),
        )
        return {r["d"] for r in rows}


def _held_by_a_readable_version(digest: str) -> str:
    """SQL: a live (not deleted) version the caller may read lists the file `digest` (an SQL expression); $2
    and $3 are the caller's hidden entities and models."""
    return f"""EXISTS (
    SELECT 1 FROM artifact_versions av
    WHERE av.file_digests @> ARRAY[{digest}] AND av.deleted_at IS NULL
      AND (av.entity <> ALL($2::text[])
           OR EXISTS (SELECT 1 FROM model_versions mv WHERE mv.artifact_version_id = av.id
                      AND mv.registered_model <> ALL($3::text[]))))"""


# The digests of a version's files, indexed: which versions hold a file, for /blobs downloads.
FILES_V1 = """
CREATE FUNCTION manifest_digests(manifest jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT coalesce(array_agg(entry ->> 'digest'), '{}') FROM jsonb_array_elements(manifest) AS entry $$;
CREATE INDEX artifact_versions_by_file ON artifact_versions USING gin (manifest_digests(manifest));
"""

# The digests kept in a column the projection fills: an index on manifest_digests(manifest) ran that SQL
# function for every version inserted, a third of the cost of logging one.
FILES_V2 = """
ALTER TABLE artifact_versions ADD COLUMN file_digests text[] NOT NULL DEFAULT '{}';
UPDATE artifact_versions SET file_digests = manifest_digests(manifest) WHERE manifest <> '[]'::jsonb;
DROP INDEX artifact_versions_by_file;
CREATE INDEX artifact_versions_by_file_digest ON artifact_versions USING gin (file_digests);
"""

# V3: a reference's digest is not a file of the store (the command path checks uploaded files only): a version
# listing `ref` entries with a private file's digest made that file downloadable by its logger.
FILES_V3 = """
UPDATE artifact_versions av SET file_digests = coalesce(
    (SELECT array_agg(DISTINCT entry ->> 'digest') FROM jsonb_array_elements(av.manifest) AS entry
     WHERE entry ->> 'ref' IS NULL),
    '{}')
WHERE EXISTS (
    SELECT 1 FROM jsonb_array_elements(av.manifest) AS entry WHERE entry ->> 'ref' IS NOT NULL);
"""

# The file digests of deleted versions, in an index of their own: every download and every version logged asks
# whether a deleted version lists one of its files (Visibility.blobs_hidden), and deleted versions are few.
FILES_V4 = """
CREATE INDEX artifact_versions_deleted_by_file_digest ON artifact_versions USING gin (file_digests)
    WHERE deleted_at IS NOT NULL;
"""

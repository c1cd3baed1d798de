"""The identity read model: which API key belongs to which principal, with which role, and grants per scope."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from modelreg.events.envelope import Envelope
from modelreg.events.identity import (
    ApiKeyIssued,
    ApiKeyRevoked,
    RoleGranted,
    RoleRevoked,
    ScopeMadePrivate,
    ScopeMadePublic,
)
from modelreg.events.launch import JobCancelled, JobClaimed, JobFinished, JobRequeued
from modelreg.projections.migrations import Migration
from modelreg.projections.projection import Projection, Statement, handles

SCHEMA_V1 = """
CREATE TABLE api_keys (
    key_id text PRIMARY KEY,
    key_sha256 text NOT NULL UNIQUE,
    principal_kind text NOT NULL,
    principal_id text NOT NULL,
    role text NOT NULL,
    label text,
    issued_at timestamptz NOT NULL,
    issued_by text NOT NULL,
    revoked_at timestamptz
);
"""

_ISSUED = """
INSERT INTO api_keys (key_id, key_sha256, principal_kind, principal_id, role, label, issued_at, issued_by, scopes,
                      expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
"""

# A key's end, when it was given one (ApiKeyIssued v2).
EXPIRY_V1 = "ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;"

# With the key, the keys of the Launch attempts it claimed (JOB_KEYS_V3).
# A key's revocation is its earliest, in whatever order its revocations are applied (an attempt's key is revoked by
# its attempt's end, on the job's stream, and by its claiming key's, on the principal's): a replay gives the same rows.
_REVOKED = """
UPDATE api_keys SET revoked_at = $2, revoked_by = $3
WHERE (key_id = $1 OR issued_with = $1) AND (revoked_at IS NULL OR revoked_at > $2)
"""

SCHEMA_V2 = """
CREATE TABLE role_grants (
    principal_kind text NOT NULL,
    principal_id text NOT NULL,
    scope text NOT NULL,
    role text NOT NULL,
    granted_at timestamptz NOT NULL,
    granted_by text NOT NULL,
    PRIMARY KEY (principal_kind, principal_id, scope)
);
"""

_GRANTED = """
INSERT INTO role_grants (principal_kind, principal_id, scope, role, granted_at, granted_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (principal_kind, principal_id, scope)
DO UPDATE SET role = EXCLUDED.role, granted_at = EXCLUDED.granted_at, granted_by = EXCLUDED.granted_by
"""

_GRANT_REVOKED = "DELETE FROM role_grants WHERE principal_kind = $1 AND principal_id = $2 AND scope = $3"

# Who revoked a key, and a principal's keys by principal, for the Access page. Keys revoked before this
# column existed show no one until `modelreg rebuild identity` replays the log.
SCHEMA_V3 = """
ALTER TABLE api_keys ADD COLUMN revoked_by text;
CREATE INDEX api_keys_by_principal ON api_keys (principal_kind, principal_id);
"""

# Which entities and registered models are private (projections/readable.py reads it for every request), and
# the scopes a key is limited to. Its own component: other work numbers "identity" migrations too.
VISIBILITY_V1 = """
CREATE TABLE private_scopes (
    scope text PRIMARY KEY,
    made_private_at timestamptz NOT NULL,
    made_private_by text NOT NULL
);
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL DEFAULT '{}';
"""

_MADE_PRIVATE = """
INSERT INTO private_scopes (scope, made_private_at, made_private_by) VALUES ($1, $2, $3) ON CONFLICT (scope) DO NOTHING
"""

_MADE_PUBLIC = "DELETE FROM private_scopes WHERE scope = $1"

# Whatever changes who a key is (its row, its principal's grants, the private scopes; a rebuild's TRUNCATE
# included) is announced on this channel, in the transaction that changes it: API processes keep the keys they
# looked up until then (services/http/known_keys.py).
IDENTITY_CHANGED_CHANNEL = "modelreg_identity_changed"
CHANGES_V1 = f"""
CREATE FUNCTION modelreg_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{IDENTITY_CHANGED_CHANNEL}', '');
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_identity_changed();
CREATE TRIGGER role_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON role_grants
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_identity_changed();
CREATE TRIGGER private_scopes_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON private_scopes
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_identity_changed();
"""


# A Launch job attempt's own key (events/launch.py, JobClaimed), issued with its claim and revoked when the attempt
# ends: finished, requeued or cancelled. An attempt's end names its job, not its key.
JOB_KEYS_V1 = """
ALTER TABLE api_keys ADD COLUMN job_id uuid;
CREATE INDEX api_keys_by_job ON api_keys (job_id) WHERE job_id IS NOT NULL;
"""

# Which attempt: the end of one attempt, even appended after the next one's claim, revokes that attempt's key only.
# Keys issued before it have their attempt in their label ("job <id> attempt <n>").
JOB_KEYS_V2 = """
ALTER TABLE api_keys ADD COLUMN job_attempt integer;
UPDATE api_keys SET job_attempt = split_part(label, ' attempt ', 2)::integer WHERE job_id IS NOT NULL;
"""

# The agent's key that claimed the attempt: revoking it revokes the attempt's key (the key sits on the agent's host).
# A claim applied after its claiming key's revocation (another stream, maybe another partition) is issued revoked.
JOB_KEYS_V3 = """
ALTER TABLE api_keys ADD COLUMN issued_with text;
CREATE INDEX api_keys_by_issuing_key ON api_keys (issued_with) WHERE issued_with IS NOT NULL;
"""

_JOB_KEY_ISSUED = """
INSERT INTO api_keys (
    key_id, key_sha256, principal_kind, principal_id, role, label, issued_at, issued_by, scopes, job_id, job_attempt,
    issued_with, revoked_at, revoked_by
)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, claiming.revoked_at, claiming.revoked_by
FROM (VALUES (1)) AS one
LEFT JOIN api_keys AS claiming ON claiming.key_id = $12 AND claiming.revoked_at IS NOT NULL
ON CONFLICT DO NOTHING
"""

_ATTEMPT_KEY_REVOKED = """
UPDATE api_keys SET revoked_at = $3, revoked_by = $4
WHERE job_id = $1 AND job_attempt = $2 AND (revoked_at IS NULL OR revoked_at > $3)
"""
# A cancelled job's keys are revoked this long after the cancel, not at once: its agent asks the job's process to
# stop (SIGTERM) within a few seconds and kills it STOP_GRACE_S (10 s) later, and meanwhile the process flushes its
# runs' last points and finishes them failed (143). Revoked at the cancel, it was refused (401) and its runs were
# marked crashed without their last points. Until then the key may do only that (services/commands/
# cancelled_jobs.py). Counted from the cancel's own time, so a replay revokes at the same time.
CANCELLED_JOB_KEY_GRACE_S = 30.0

_JOB_KEYS_REVOKED = """
UPDATE api_keys SET revoked_at = $2, revoked_by = $3 WHERE job_id = $1 AND (revoked_at IS NULL OR revoked_at > $2)
"""


class IdentityProjection(Projection):
    name = "identity"
    tables = ("api_keys", "role_grants", "private_scopes")
    migrations = (
        Migration("identity", 1, SCHEMA_V1),
        Migration("identity", 2, SCHEMA_V2),
        Migration("identity", 3, SCHEMA_V3),
        Migration("identity_visibility", 1, VISIBILITY_V1),
        # Numbered after VISIBILITY_V1 (migrations run in (component, number) order): it needs private_scopes.
        Migration("identity_visibility", 2, CHANGES_V1),
        Migration("identity_job_keys", 1, JOB_KEYS_V1),
        Migration("identity_job_keys", 2, JOB_KEYS_V2, rewrites="notes the attempt of every job key"),
        Migration("identity_job_keys", 3, JOB_KEYS_V3),
        Migration("identity_expiry", 1, EXPIRY_V1),
    )

    @handles(ApiKeyIssued)
    def api_key_issued(self, e: ApiKeyIssued, envelope: Envelope) -> list[Statement]:
        args = (
            e.key_id,
            e.key_sha256,
            e.principal.kind,
            e.principal.id,
            e.role,
            e.label,
            envelope.occurred_at,
            str(envelope.actor),
            list(e.scopes),
            e.expires_at,
        )
        return [Statement(_ISSUED, args)]

    @handles(ApiKeyRevoked)
    def api_key_revoked(self, e: ApiKeyRevoked, envelope: Envelope) -> list[Statement]:
        return [Statement(_REVOKED, (e.key_id, envelope.occurred_at, str(envelope.actor)))]

    @handles(JobClaimed)
    def job_attempt_key_issued(self, e: JobClaimed, envelope: Envelope) -> list[Statement]:
        if e.key_id is None:
            return []  # a v2 claim: its attempt ran with the agent's key
        args = (
            e.key_id,
            e.key_sha256,
            envelope.actor.kind,
            envelope.actor.id,
            e.key_role,
            f"job {e.job_id} attempt {e.attempt}",
            envelope.occurred_at,
            str(envelope.actor),
            list(e.key_scopes),
            e.job_id,
            e.attempt,
            e.claimed_with,
        )
        return [Statement(_JOB_KEY_ISSUED, args)]

    @handles(JobFinished)
    def job_finished(self, e: JobFinished, envelope: Envelope) -> list[Statement]:
        return self._attempt_key_revoked(e.job_id, e.attempt, envelope)

    @handles(JobRequeued)
    def job_requeued(self, e: JobRequeued, envelope: Envelope) -> list[Statement]:
        return self._attempt_key_revoked(e.job_id, e.attempt, envelope)

    @handles(JobCancelled)
    def job_cancelled(self, e: JobCancelled, envelope: Envelope) -> list[Statement]:
        revoked_at = envelope.occurred_at + timedelta(seconds=CANCELLED_JOB_KEY_GRACE_S)
        return [Statement(_JOB_KEYS_REVOKED, (e.job_id, revoked_at, str(envelope.actor)))]

    @staticmethod
    def _attempt_key_revoked(job_id: UUID, attempt: int, envelope: Envelope) -> list[Statement]:
        return [Statement(_ATTEMPT_KEY_REVOKED, (job_id, attempt, envelope.occurred_at, str(envelope.actor)))]

    @handles(RoleGranted)
    def role_granted(self, e: RoleGranted, envelope: Envelope) -> list[Statement]:
        args = (e.principal.kind, e.principal.id, e.scope, e.role, envelope.occurred_at, str(envelope.actor))
        return [Statement(_GRANTED, args)]

    @handles(RoleRevoked)
    def role_revoked(self, e: RoleRevoked, envelope: Envelope) -> list[Statement]:
        return [Statement(_GRANT_REVOKED, (e.principal.kind, e.principal.id, e.scope))]

    @handles(ScopeMadePrivate)
    def scope_made_private(self, e: ScopeMadePrivate, envelope: Envelope) -> list[Statement]:
        return [Statement(_MADE_PRIVATE, (e.scope, envelope.occurred_at, str(envelope.actor)))]

    @handles(ScopeMadePublic)
    def scope_made_public(self, e: ScopeMadePublic, envelope: Envelope) -> list[Statement]:
        return [Statement(_MADE_PUBLIC, (e.scope,))]

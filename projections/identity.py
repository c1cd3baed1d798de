"""The identity read model: which API key belongs to which principal, with which role."""

from __future__ import annotations

from modelreg.events.envelope import Envelope
from modelreg.events.identity import ApiKeyIssued, ApiKeyRevoked
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
INSERT INTO api_keys (key_id, key_sha256, principal_kind, principal_id, role, label, issued_at, issued_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
"""

_REVOKED = "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL"


class IdentityProjection(Projection):
    name = "identity"
    tables = ("api_keys",)
    migrations = (Migration("identity", 1, SCHEMA_V1),)

    @handles(ApiKeyIssued)
    def api_key_issued(self, e: ApiKeyIssued, envelope: Envelope) -> list[Statement]:
        args = (e.key_id, e.key_sha256, e.principal.kind, e.principal.id, e.role, e.label, envelope.occurred_at, str(envelope.actor))
        return [Statement(_ISSUED, args)]

    @handles(ApiKeyRevoked)
    def api_key_revoked(self, e: ApiKeyRevoked, envelope: Envelope) -> list[Statement]:
        return [Statement(_REVOKED, (e.key_id, envelope.occurred_at))]

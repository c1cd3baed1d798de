"""Reads of the identity read model: who presents a key (every request), and for the Access page and its
commands, principals, their keys, their grants.

Never the key's hash: what leaves here is what an admin may see (the key id is the public part of a key,
`mr_<key id>_...`).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from modelreg.events.identity import Role
from modelreg.projections.search import like_pattern

PrincipalKey = tuple[str, str]  # (kind, id)

# The last use is written by the API processes (services/http/key_uses.py), beside the read model.
_KEY_COLUMNS = (
    "key_id, principal_kind, principal_id, role, label, issued_at, issued_by, revoked_at, revoked_by, scopes, "
    "expires_at, (SELECT u.last_used_at FROM api_key_uses u WHERE u.key_id = api_keys.key_id) AS last_used_at, "
    "(SELECT m.applied_at FROM schema_migrations m WHERE m.component = 'key_uses' AND m.number = 1) "
    "AS uses_recorded_since"
)


class IdentityQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def principals_page(
        self, *, search: str | None, after: PrincipalKey | None, limit: int
    ) -> list[PrincipalKey]:
        """Everyone who holds a key (live or revoked) or a grant, by kind then id."""
        rows = await self.pool.fetch(
            """WITH principals AS (
                   SELECT principal_kind, principal_id FROM api_keys
                   UNION SELECT principal_kind, principal_id FROM role_grants)
               SELECT principal_kind, principal_id FROM principals
               WHERE ($1::text IS NULL OR principal_kind || ':' || principal_id ILIKE $1)
                 AND ($2::text IS NULL OR (principal_kind, principal_id) > ($2, $3))
               ORDER BY principal_kind, principal_id LIMIT $4""",
            like_pattern(search) if search else None,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [(r["principal_kind"], r["principal_id"]) for r in rows]

    async def keys_of(self, principals: list[PrincipalKey]) -> dict[PrincipalKey, list[dict[str, Any]]]:
        """Their keys, newest first; of the keys of Launch job attempts (an agent's principal has one per attempt
        it ran), only those still live: the audit log keeps the rest, with their jobs."""
        return await self._by_principal(
            f"SELECT {_KEY_COLUMNS} FROM (SELECT * FROM api_keys WHERE job_id IS NULL OR revoked_at IS NULL) api_keys",
            "issued_at DESC, key_id",
            principals,
        )

    async def grants_of(self, principals: list[PrincipalKey]) -> dict[PrincipalKey, list[dict[str, Any]]]:
        """Their grants, by scope."""
        return await self._by_principal(
            "SELECT principal_kind, principal_id, scope, role, granted_at, granted_by FROM role_grants",
            "scope",
            principals,
        )

    async def _by_principal(
        self, select: str, order: str, principals: list[PrincipalKey]
    ) -> dict[PrincipalKey, list[dict[str, Any]]]:
        """The rows of `select` (a table of principals' rows) for each of `principals`, in one query."""
        rows = await self.pool.fetch(
            f"{select} JOIN unnest($1::text[], $2::text[]) AS p(principal_kind, principal_id) "
            f"USING (principal_kind, principal_id) ORDER BY {order}",
            [p[0] for p in principals],
            [p[1] for p in principals],
        )
        found: dict[PrincipalKey, list[dict[str, Any]]] = {p: [] for p in principals}
        for row in rows:
            found[row["principal_kind"], row["principal_id"]].append(dict(row))
        return found

    async def holding_live_keys(self, principals: list[PrincipalKey]) -> set[PrincipalKey]:
        """Which of `principals` hold a live key (one not revoked), in one query."""
        rows = await self.pool.fetch(
            """SELECT p.principal_kind, p.principal_id
               FROM unnest($1::text[], $2::text[]) AS p(principal_kind, principal_id)
               WHERE EXISTS (SELECT 1 FROM api_keys k WHERE k.principal_kind = p.principal_kind
                             AND k.principal_id = p.principal_id AND k.revoked_at IS NULL)""",
            [p[0] for p in principals],
            [p[1] for p in principals],
        )
        return {(r["principal_kind"], r["principal_id"]) for r in rows}

    async def api_key(self, key_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1", key_id)
        return dict(row) if row else None

    async def grant(self, principal: PrincipalKey, scope: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT principal_kind, principal_id, scope, role, granted_at, granted_by FROM role_grants "
            "WHERE principal_kind = $1 AND principal_id = $2 AND scope = $3",
            principal[0],
            principal[1],
            scope,
        )
        return dict(row) if row else None

    async def live_admin_keys(self) -> int:
        return await self.pool.fetchval(
            "SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > now())"
        )

    async def lasting_admin_keys(self) -> int:
        """Admin keys not revoked that never expire: what keeps the installation administrable."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL AND expires_at IS NULL"
        )

    async def principal_of_key(self, key_sha256: str) -> dict[str, Any] | None:
        """The live key with this hash (None if unknown or revoked), with its principal's grants (scope -> role),
        the scopes it is limited to, and the installation's private scopes (projections/readable.py), in one trip.
        A cancelled job's key is live until its revocation's time, which comes with it (revoked_at)."""
        row = await self.pool.fetchrow(
            """SELECT k.key_id, k.principal_kind, k.principal_id, k.role, k.scopes, k.job_id, k.job_attempt,
                      k.revoked_at, k.expires_at,
                      (SELECT coalesce(array_agg(p.scope), '{}') FROM private_scopes p) AS private,
                      coalesce((SELECT jsonb_object_agg(g.scope, g.role) FROM role_grants g
                                WHERE g.principal_kind = k.principal_kind AND g.principal_id = k.principal_id),
                               '{}') AS grants
               FROM api_keys k WHERE k.key_sha256 = $1 AND (k.revoked_at IS NULL OR k.revoked_at > now())""",
            key_sha256,
        )
        return dict(row) if row else None

    async def private_scopes(self) -> frozenset[str]:
        """The entities and registered models made private (`entity:<name>`, `model:<name>`)."""
        return frozenset(r["scope"] for r in await self.pool.fetch("SELECT scope FROM private_scopes"))

    async def keys_of_principal(self, principal_kind: str, principal_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE principal_kind = $1 AND principal_id = $2 AND job_id IS NULL "
            "ORDER BY issued_at, key_id",
            principal_kind,
            principal_id,
        )
        return [dict(r) for r in rows]

    async def principals(self) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT principal_kind || ':' || principal_id AS principal FROM api_keys WHERE job_id IS NULL
               UNION SELECT principal_kind || ':' || principal_id FROM role_grants ORDER BY principal"""
        )
        return [r["principal"] for r in rows]

    async def grants_on(self, scope: str, *, after: PrincipalKey | None, limit: int) -> list[dict[str, Any]]:
        """The grants on one scope, by principal kind then id (a team's members: its admins list them)."""
        rows = await self.pool.fetch(
            """SELECT * FROM role_grants
               WHERE scope = $1 AND ($2::text IS NULL OR (principal_kind, principal_id) > ($2, $3))
               ORDER BY principal_kind, principal_id LIMIT $4""",
            scope,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [dict(r) for r in rows]

    async def grantees_of(self, scope: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT principal_kind || ':' || principal_id AS principal FROM role_grants WHERE scope = $1 "
            "ORDER BY principal",
            scope,
        )
        return [r["principal"] for r in rows]

    async def roles_by_scope(self, principal_kind: str, principal_id: str) -> dict[str, Role]:
        """The roles one principal is granted, by scope: what a caller carries (`grants_of` gives the Access
        page's rows for many principals)."""
        rows = await self.pool.fetch(
            "SELECT scope, role FROM role_grants WHERE principal_kind = $1 AND principal_id = $2",
            principal_kind,
            principal_id,
        )
        return {r["scope"]: r["role"] for r in rows}

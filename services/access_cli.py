"""The command line of access: `modelreg key` (issue, list, revoke API keys: installation admins) and `modelreg role`
(grant, revoke and list roles on a scope: its admins), all through the API with the caller's key, so that an
operator scripts onboarding and offboarding without writing GraphQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from modelreg.services.cli_client import client_options, graphql, seconds, warn
from modelreg.services.terminal_text import say, shown

ROLES = click.Choice(["viewer", "member", "admin"])


def _principal(value: str) -> tuple[str, str]:
    kind, _, ident = value.partition(":")
    if kind not in ("user", "service") or not ident:
        raise click.BadParameter(
            f"{value!r} is not a principal: write user:NAME or service:NAME", param_hint="PRINCIPAL"
        )
    return kind, ident


def _pages(url: str | None, api_key: str | None, query: str, field: str, **variables: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paged list, fetching a page at a time."""
    after = None
    while True:
        page = graphql(url, api_key, query, {**variables, "after": after})[field]
        yield from page["items"]
        if not page["hasNextPage"]:
            return
        after = page["endCursor"]


@click.group()
def key() -> None:
    """API keys (installation admins): issue, list and revoke them."""


@key.command("issue")
@click.argument("principal")
@click.option("--role", type=ROLES, default="member", show_default=True, help="Its role wherever it has no grant.")
@click.option("--label", default=None, help="What it is for, where it lives (ci runner on build-7).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="Limit it to this scope (registry, model:NAME, entity:NAME, queue:NAME; repeat for several): a leaked key "
    "does harm there only.",
)
@click.option("--expires-in", default=None, help="Refuse it after this long (90d, 12h); it never expires without.")
@client_options
def key_issue(
    principal: str,
    role: str,
    label: str | None,
    scopes: tuple[str, ...],
    expires_in: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Issue a key to PRINCIPAL (user:NAME or service:NAME). The key is printed once, alone on standard output."""
    kind, ident = _principal(principal)
    query = """mutation($i: IssueApiKeyInput!) { issueApiKey(input: $i) {
      key id principal role scopes expiresAt grants { scope role } warnings } }"""
    fields: dict[str, Any] = {"principalKind": kind.upper(), "principalId": ident, "role": role.upper()}
    if label is not None:
        fields["label"] = label
    if scopes:
        fields["scopes"] = list(scopes)
    if expires_in is not None:
        fields["expiresInS"] = seconds(expires_in, "--expires-in")
    issued = graphql(url, api_key, query, {"i": fields})["issueApiKey"]
    limited = f", limited to {', '.join(issued['scopes'])}" if issued["scopes"] else ""
    limited += f", expires {issued['expiresAt']}" if issued["expiresAt"] else ""
    say(
        f"key {issued['id']} issued to {issued['principal']} ({issued['role'].lower()}{limited}); shown once:", err=True
    )
    for grant in issued["grants"]:
        say(f"it holds {grant['role'].lower()} on {grant['scope']} (its principal's grant)", err=True)
    warn(issued["warnings"])
    click.echo(issued["key"])  # alone on stdout: `KEY=$(modelreg key issue service:ci)`


@key.command("list")
@click.option("--search", default=None, help="Part of the principal (zoe, service:).")
@click.option("--revoked/--live-only", default=False, help="Also list revoked and expired keys.")
@click.option(
    "--unused-for", default=None, help="Only keys no request presented for this long (90d, 12h): ones to revoke?"
)
@client_options
def key_list(search: str | None, revoked: bool, unused_for: str | None, url: str | None, api_key: str | None) -> None:
    """Every principal's keys (never the keys themselves): id, role, limits, label, who issued it and when, and when a
    request last presented it."""
    unused_since = datetime.now(UTC) - timedelta(seconds=seconds(unused_for, "--unused-for")) if unused_for else None
    query = """query($search: String, $after: String) { principals(search: $search, first: 200, after: $after) {
      items { id keys { id role label scopes issuedAt issuedBy live revokedAt expiresAt lastUsedAt unusedSince } }
      endCursor hasNextPage } }"""
    for principal in _pages(url, api_key, query, "principals", search=search):
        for found in principal["keys"]:
            if not found["live"] and not revoked:
                continue
            used = found["lastUsedAt"]
            if unused_since is not None and _used_since(found["unusedSince"], unused_since):
                continue
            limits = f" limited to {','.join(found['scopes'])}" if found["scopes"] else ""
            if found["live"]:
                state = f"live until {found['expiresAt']}" if found["expiresAt"] else "live"
            else:
                state = f"revoked {found['revokedAt']}" if found["revokedAt"] else f"expired {found['expiresAt']}"
            label = f" ({shown(found['label'])})" if found["label"] else ""
            click.echo(
                f"{found['id']}  {shown(principal['id'])}  {found['role'].lower()}{limits}  {state}  "
                f"issued {found['issuedAt']} by {shown(found['issuedBy'])}{label}  "
                + (f"last used {used}" if used else "never used")
            )


def _used_since(used_at: str, since: datetime) -> bool:
    return datetime.fromisoformat(used_at) >= since


@key.command("revoke")
@click.argument("key_id")
@client_options
def key_revoke(key_id: str, url: str | None, api_key: str | None) -> None:
    """Revoke key KEY_ID (its public part, as `modelreg key list` shows it): refused from its next request on."""
    query = "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id principal warnings } }"
    revoked = graphql(url, api_key, query, {"i": {"keyId": key_id.removeprefix("mr_").split("_")[0]}})["revokeApiKey"]
    say(f"key {revoked['id']} of {revoked['principal']} revoked")
    warn(revoked["warnings"])


@click.group()
def role() -> None:
    """Roles granted on a scope (its admins): grant, revoke and list them."""


@role.command("grant")
@click.argument("principal")
@click.argument("scope")
@click.argument("granted", metavar="ROLE", type=ROLES)
@client_options
def role_grant(principal: str, scope: str, granted: str, url: str | None, api_key: str | None) -> None:
    """Give PRINCIPAL the role ROLE on SCOPE (registry, model:NAME, entity:NAME), replacing the one it held there."""
    _principal(principal)
    query = """mutation($i: GrantRoleInput!) { grantRole(input: $i) { principal scope role warnings } }"""
    done = graphql(url, api_key, query, {"i": {"principal": principal, "scope": scope, "role": granted.upper()}})
    grant = done["grantRole"]
    say(f"{grant['principal']} is {grant['role'].lower()} on {grant['scope']}")
    warn(grant["warnings"])


@role.command("revoke")
@click.argument("principal")
@click.argument("scope")
@client_options
def role_revoke(principal: str, scope: str, url: str | None, api_key: str | None) -> None:
    """Take back PRINCIPAL's role on SCOPE: its keys' own role holds there again."""
    _principal(principal)
    query = "mutation($i: RevokeRoleInput!) { revokeRole(input: $i) { principal scope } }"
    done = graphql(url, api_key, query, {"i": {"principal": principal, "scope": scope}})["revokeRole"]
    say(f"{done['principal']} holds no role on {done['scope']} any more")


@role.command("list")
@click.argument("scope")
@client_options
def role_list(scope: str, url: str | None, api_key: str | None) -> None:
    """Who holds a role on SCOPE (a team's members on entity:NAME), with who granted it and when."""
    query = """query($s: String!, $after: String) { grantsOn(scope: $s, first: 200, after: $after) {
      items { principal role grantedBy grantedAt } endCursor hasNextPage } }"""
    found = 0
    for grant in _pages(url, api_key, query, "grantsOn", s=scope):
        found += 1
        click.echo(
            f"{shown(grant['principal'])}  {grant['role'].lower()}  granted {grant['grantedAt']} by "
            f"{shown(grant['grantedBy'])}"
        )
    if not found:
        say(f"no one holds a role on {scope}", err=True)

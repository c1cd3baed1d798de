"""An operator onboards and offboards from the command line (`modelreg key`, `modelreg role`) as from GraphQL: a key
printed once and alone on standard output, the warnings the API gives, a team's members listed."""

from __future__ import annotations

import asyncio
import re

import asyncpg
from click.testing import CliRunner
from support.command_line import command_line
from support.stack import Stack

from modelreg.services.cli import main


async def test_an_operator_issues_lists_and_revokes_keys_and_grants_roles_from_the_command_line(stack: Stack) -> None:
    cli = await command_line(stack)
    printed, said = await cli.with_warnings(
        "key", "issue", "service:ci", "--role", "member", "--label", "ci runner", "--scope", "model:nature"
    )
    token = printed.strip()
    assert printed == f"{token}\n" and token.startswith("mr_")  # KEY=$(modelreg key issue ...)
    found = re.search(r"key (\w+) issued to service:ci \(member, limited to model:nature\); shown once", said)
    assert found is not None, said
    key_id = found[1]
    viewer = await stack.graphql("{ viewer { id keyId } }", key=token)
    assert viewer["data"]["viewer"] == {"id": "service:ci", "keyId": key_id}

    (listed,) = (await cli("key", "list", "--search", "service:")).splitlines()
    assert listed.startswith(f"{key_id}  service:ci  member limited to model:nature  live  issued ")
    assert "by user:ada (ci runner)  last used 20" in listed and token not in listed

    granted, warned = await cli.with_warnings("role", "grant", "user:tam", "entity:acme", "admin")
    assert granted == "user:tam is admin on entity:acme\n"
    assert warned.startswith("warning: ") and "user:tam" in warned  # no key was ever issued to user:tam
    (member,) = (await cli("role", "list", "entity:acme")).splitlines()
    assert member.startswith("user:tam  admin  granted ") and member.endswith(" by user:ada")
    assert await cli("role", "revoke", "user:tam", "entity:acme") == "user:tam holds no role on entity:acme any more\n"
    assert await cli.with_warnings("role", "list", "entity:acme") == ("", "no one holds a role on entity:acme\n")

    # Revoked by the whole key as well as by its id; its last live key gone, the principal's grants are named.
    await cli("role", "grant", "service:ci", "model:nature", "admin")
    revoked, warned = await cli.with_warnings("key", "revoke", token)
    assert revoked == f"key {key_id} of service:ci revoked\n"
    assert "model:nature" in warned
    assert await cli("key", "list", "--search", "service:") == ""
    ending, said = await cli.with_warnings("key", "issue", "user:kim", "--role", "viewer", "--expires-in", "90d")
    assert ending.startswith("mr_") and ", expires 20" in said
    (kim,) = (await cli("key", "list", "--search", "kim")).splitlines()
    assert "  user:kim  viewer  live until 20" in kim
    (shown,) = (await cli("key", "list", "--search", "service:", "--revoked")).splitlines()
    assert f"{key_id}  service:ci  member limited to model:nature  revoked " in shown


def test_a_principal_without_its_kind_is_refused_saying_how_to_write_one() -> None:
    result = CliRunner().invoke(main, ["role", "grant", "tam", "entity:acme", "admin"])
    assert result.exit_code == 2
    assert "'tam' is not a principal: write user:NAME or service:NAME" in result.output


async def test_an_admin_finds_the_keys_nobody_presented_for_a_while(stack: Stack) -> None:
    cli = await command_line(stack)
    idle = (await cli("key", "issue", "service:nightly")).strip()
    busy = (await cli("key", "issue", "service:ci")).strip()
    (never,) = (await cli("key", "list", "--search", "nightly")).splitlines()
    assert never.endswith("  never used") and idle not in never
    assert await cli("key", "list", "--search", "service:", "--unused-for", "1h") == ""  # issued just now

    await asyncio.sleep(1.5)
    await stack.graphql("{ viewer { id } }", key=busy)
    (used,) = (await cli("key", "list", "--search", "service:ci")).splitlines()
    assert "  last used 20" in used
    (unused,) = (await cli("key", "list", "--search", "service:", "--unused-for", "1s")).splitlines()
    assert "  service:nightly  " in unused and unused.endswith("  never used")
    keys = await stack.graphql('{ principals(search: "service:ci", first: 5) { items { keys { lastUsedAt } } } }')
    (principal,) = keys["data"]["principals"]["items"]
    assert principal["keys"][0]["lastUsedAt"] is not None

    # Upgraded only now, the installation recorded no use of the nightly key before: it is not taken for unused.
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await conn.execute("UPDATE schema_migrations SET applied_at = now() WHERE component = 'key_uses'")
    finally:
        await conn.close()
    assert await cli("key", "list", "--search", "service:", "--unused-for", "1s") == ""

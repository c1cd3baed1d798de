"""An alias being protected and a member's move of it take turns: decided side by side, the move was checked
against read models that did not show the protection yet, and both were acknowledged. A member moved
`production` after an admin had protected it (found by trying it: 2 rounds of 15 over HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import pytest
from support.write_side import ADMIN, MEMBER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, PermissionDenied
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.events.registry import AliasAdded, registered_model_stream
from modelreg.services.commands.commands import (
    AddAlias,
    Command,
    LinkVersion,
    LogArtifactVersion,
    ProtectAlias,
    RemoveAlias,
    UnlinkVersion,
    version_turn,
)
from modelreg.services.commands.decisions import CommandContext


class ALogThatTakesAMoment(InMemoryEventLog):
    """Appending waits on the network, as on Kafka: the other command is decided meanwhile."""

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        await asyncio.sleep(0.01)
        return await super().append(events)


async def linked(registry: WriteSide, content: bytes, *aliases: str) -> UUID:
    manifest = (registry.stored_file(content),)
    logged = await registry(
        LogArtifactVersion(entity="acme", project="fraud", name="weights", artifact_type="model", manifest=manifest)
    )
    await registry(LinkVersion(registered_model="fraud", artifact_version_id=logged.subject_id, aliases=aliases))
    return logged.subject_id


def moved_after_protection(registry: WriteSide) -> list[str]:
    """The member's alias events on the log after `production` was protected."""
    appended = registry.appended()
    protected_at = next(n for n, e in enumerate(appended) if e.type == "registry.alias_protected")
    return [e.type for e in appended[protected_at:] if e.actor == MEMBER.actor and e.type != "artifacts.version_logged"]


async def protected_beside(registry: WriteSide, move: Command) -> list[object]:
    protect = ProtectAlias(registered_model="fraud", alias="production")
    return await asyncio.gather(registry(protect, ADMIN), registry(move, MEMBER), return_exceptions=True)


async def test_a_member_moving_an_alias_while_an_admin_protects_it_never_moves_it_after_the_protection() -> None:
    registry = WriteSide(ALogThatTakesAMoment())
    first = await linked(registry, b"v0", "production")
    second = await linked(registry, b"v1")

    answers = await protected_beside(
        registry, AddAlias(registered_model="fraud", artifact_version_id=second, alias="production")
    )

    assert moved_after_protection(registry) == [], registry.appended_types()
    assert isinstance(answers[1], PermissionDenied), answers  # the protection came first, so the move was refused
    assert await registry.read_models.registry.alias_target("fraud", "production") == first


@pytest.mark.parametrize("move", ["remove", "link", "unlink"])
async def test_no_other_way_of_moving_an_alias_slips_past_its_protection(move: str) -> None:
    registry = WriteSide(ALogThatTakesAMoment())
    first = await linked(registry, b"v0", "production")
    second = await linked(registry, b"v1")
    command = {
        "remove": RemoveAlias(registered_model="fraud", alias="production"),
        "link": LinkVersion(registered_model="fraud", artifact_version_id=second, aliases=("production",)),
        "unlink": UnlinkVersion(registered_model="fraud", artifact_version_id=first),
    }[move]

    answers = await protected_beside(registry, command)

    assert moved_after_protection(registry) == [], registry.appended_types()
    assert isinstance(answers[1], PermissionDenied), answers
    assert await registry.read_models.registry.alias_target("fraud", "production") == first


async def test_an_unlink_whose_version_got_an_alias_while_it_waited_is_sent_again() -> None:
    # The unlink takes the turns of the aliases its version holds when it asks for them; one moved onto the version
    # before its turn came was never in its turns, so a protection of it could be decided beside the unlink.
    registry = WriteSide()
    version = await linked(registry, b"v0")
    await registry.app.copies.let_go()
    someone_else = uuid7()
    assert not await registry.in_flight.claim([version_turn(version)], someone_else)  # another process's move
    unlink = asyncio.create_task(registry(UnlinkVersion(registered_model="fraud", artifact_version_id=version)))
    await asyncio.sleep(0.05)  # it has asked for its turns and waits for that move
    moved = AddAlias(registered_model="fraud", artifact_version_id=version, alias="production")
    context = CommandContext(registry.read_models.protocols(), ADMIN)
    await registry.log.append([context.event(AliasAdded(**moved.facts()), registered_model_stream("fraud"))])
    registry.projections.catch_up()
    await registry.in_flight.release([version_turn(version)], someone_else)

    with pytest.raises(
        Conflict, match="moved onto this version while the unlink waited, so it was not carried out"
    ) as refused:
        await unlink
    assert refused.value.retriable  # refused, nothing written: not NOT_YET_VISIBLE, which says it was accepted
    assert "registry.version_unlinked" not in registry.appended_types()
    await registry(UnlinkVersion(registered_model="fraud", artifact_version_id=version))  # sent again: done
    assert registry.appended_types()[-1] == "registry.version_unlinked"

"""Commands about one artifact version's links, aliases and existence take turns, whoever sends them: their
events go to two streams (the version's collection's and a registered model's) that no partition orders, and
each was checked against read models that did not show the other yet. Two API processes told both callers
yes: a deleted version stayed linked, an alias stayed on an unlinked version, one link was recorded twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import pytest
from support.write_side import ADMIN, MEMBER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, NotFound
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.services.commands import in_flight as in_flight_module
from modelreg.services.commands.commands import (
    AddAlias,
    DeleteArtifactVersion,
    EditArtifactVersion,
    LinkVersion,
    LogArtifactVersion,
    UnlinkVersion,
    alias_turn,
    version_turn,
)
from modelreg.services.commands.in_flight import Claim, InFlightInMemory, OneCopyAtATime

COLLECTION = {"entity": "acme", "project": "fraud", "name": "weights"}


class ALogThatTakesAMoment(InMemoryEventLog):
    """Appending waits on the network, as on Kafka: the other command is decided meanwhile."""

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        await asyncio.sleep(0.01)
        return await super().append(events)


async def logged(registry: WriteSide) -> UUID:
    command = LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(registry.stored_file(b"weights"),))
    return (await registry(command)).subject_id


def link(version: UUID, *aliases: str) -> LinkVersion:
    return LinkVersion(registered_model="fraud", artifact_version_id=version, aliases=aliases, command_id=uuid7())


async def test_a_link_and_a_deletion_sent_at_once_never_leave_a_deleted_version_linked() -> None:
    registry = WriteSide(ALogThatTakesAMoment())
    version = await logged(registry)
    deletion = DeleteArtifactVersion(**COLLECTION, version="v0")

    answers = await asyncio.gather(registry(link(version), MEMBER), registry(deletion, ADMIN), return_exceptions=True)

    refused = [a for a in answers if isinstance(a, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict | NotFound), answers
    appended = registry.appended_types()
    assert ("registry.version_linked" in appended) != ("artifacts.version_deleted" in appended)


async def test_an_alias_set_while_its_version_is_unlinked_is_refused_not_left_behind() -> None:
    registry = WriteSide(ALogThatTakesAMoment())
    version = await logged(registry)
    await registry(link(version))
    unlink = UnlinkVersion(registered_model="fraud", artifact_version_id=version)
    alias = AddAlias(registered_model="fraud", artifact_version_id=version, alias="production")

    answers = await asyncio.gather(registry(unlink, ADMIN), registry(alias, MEMBER), return_exceptions=True)

    appended = registry.appended_types()
    unlinked_at = appended.index("registry.version_unlinked")
    assert "registry.alias_added" not in appended[unlinked_at:], appended
    assert not any(isinstance(a, Exception) and not isinstance(a, NotFound) for a in answers), answers


async def test_one_version_linked_by_two_callers_at_once_is_linked_once() -> None:
    registry = WriteSide(ALogThatTakesAMoment())
    version = await logged(registry)

    await asyncio.gather(registry(link(version), MEMBER), registry(link(version), ADMIN))

    assert registry.appended_types().count("registry.version_linked") == 1


async def test_a_deleted_version_is_not_linked() -> None:
    registry = WriteSide()
    version = await logged(registry)
    await registry(DeleteArtifactVersion(**COLLECTION, version="v0"), MEMBER)
    with pytest.raises(NotFound, match="was deleted: log it again to link it"):
        await registry(link(version), MEMBER)


async def test_a_command_that_waits_past_its_turn_is_told_to_send_it_again() -> None:
    registry = WriteSide()
    version = await logged(registry)
    assert not await registry.in_flight.claim([version_turn(version)], uuid7())  # another API process's link, stuck
    registry.app.read_your_writes_timeout_s = 0.05
    with pytest.raises(
        Conflict,
        match="another change to the same artifact version, alias, collection or Launch queue .*nothing was written",
    ) as refused:
        await registry(link(version), MEMBER)
    assert refused.value.retriable
    assert registry.appended_types() == ["artifacts.version_logged"]


async def test_the_same_files_logged_by_two_workers_at_once_are_one_version() -> None:
    # Two workers of one distributed job, each with its own ids: content equal to the newest version's is it.
    registry = WriteSide(ALogThatTakesAMoment())
    file = registry.stored_file(b"weights")
    logs = [LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(file,)) for _ in range(2)]

    answers = await asyncio.gather(registry(logs[0], MEMBER), registry(logs[1], ADMIN))

    assert registry.appended_types() == ["artifacts.version_logged"]
    assert answers[0].subject_id == answers[1].subject_id


async def test_a_link_and_then_an_alias_move_let_go_of_their_turn_once_together() -> None:
    # As training code sends them: the alias takes the turn back before the link's is let go of.
    registry = WriteSide()
    version = await logged(registry)
    await registry.app.copies.let_go()
    releases = registry.in_flight.releases

    await registry(link(version), MEMBER)
    await registry(AddAlias(registered_model="fraud", artifact_version_id=version, alias="production"), MEMBER)

    held = registry.in_flight.held  # for a moment: the turns (version, alias) and the link's copies' key (its id)
    assert {version_turn(version), alias_turn("fraud", "production")} < held.keys() and len(held) == 3
    assert set(held.values()) == {registry.app.copies.holder}
    await registry.app.copies.let_go()
    assert registry.in_flight.held == {}
    assert registry.in_flight.releases == releases + 1


async def test_another_process_gets_the_turn_once_this_one_lets_go_of_it() -> None:
    registry = WriteSide()
    version = await logged(registry)
    await registry(link(version), MEMBER)
    another_api = uuid7()
    assert await registry.in_flight.claim([version_turn(version)], another_api)  # a few milliseconds more
    await registry.app.copies.let_go()
    assert not await registry.in_flight.claim([version_turn(version)], another_api)


class ReleasesThatTakeAMoment(InFlightInMemory):
    def __init__(self) -> None:
        super().__init__()
        self.on_its_way = asyncio.Event()
        self.answer = asyncio.Event()

    async def release(self, keys: Sequence[UUID], holder: UUID) -> None:
        self.on_its_way.set()
        await self.answer.wait()
        await super().release(keys, holder)


async def test_a_turn_taken_again_while_the_statement_letting_go_of_it_is_on_its_way_is_kept() -> None:
    in_flight = ReleasesThatTakeAMoment()
    copies = OneCopyAtATime(in_flight)
    turn = Claim(uuid7(), "link version", turn=True)
    async with copies.held([turn], 1.0):
        pass
    await in_flight.on_its_way.wait()
    held_while_deciding = []

    async def the_next_command() -> None:
        async with copies.held([turn], 1.0):
            held_while_deciding.append(dict(in_flight.held))

    next_command = asyncio.create_task(the_next_command())
    await asyncio.sleep(0.01)
    assert not next_command.done()  # it waits for the statement, which would otherwise delete its claim
    in_flight.answer.set()
    await next_command
    assert held_while_deciding == [{turn.key: copies.holder}]
    await copies.let_go()
    assert in_flight.held == {}


async def test_a_command_arriving_as_the_turn_passes_to_a_waiting_one_is_still_refused_at_its_deadline() -> None:
    # The lock just let go of is not locked for a moment, yet the waiting command comes first.
    copies = OneCopyAtATime(InFlightInMemory())
    turn = Claim(uuid7(), "link version", turn=True)
    first_in, first_done = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with copies.held([turn], 1.0):
            first_in.set()
            await first_done.wait()

    async def second() -> None:  # waiting, then holding the turn longer than the third command may wait
        async with copies.held([turn], 1.0):
            await asyncio.sleep(0.3)

    commands = [asyncio.create_task(first())]
    await first_in.wait()
    commands.append(asyncio.create_task(second()))
    await asyncio.sleep(0)
    first_done.set()
    await asyncio.sleep(0)  # the first has let go; the second is not running yet
    started = asyncio.get_running_loop().time()
    with pytest.raises(Conflict, match="another change to the same artifact version"):
        async with copies.held([turn], 0.05):
            pass
    assert asyncio.get_running_loop().time() - started < 0.25
    await asyncio.gather(*commands)
    await copies.let_go()


class ReleasesThatFailOnce(InFlightInMemory):
    async def release(self, keys: Sequence[UUID], holder: UUID) -> None:
        if not self.releases:
            self.releases += 1
            raise ConnectionResetError("PostgreSQL restarting")
        await super().release(keys, holder)


async def test_claims_whose_release_failed_are_let_go_of_on_the_next_try(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(in_flight_module, "RELEASE_RETRY_S", 0.01)
    in_flight = ReleasesThatFailOnce()
    copies = OneCopyAtATime(in_flight)
    async with copies.held([Claim(uuid7(), "link version", turn=True)], 1.0):
        pass
    await copies.let_go()
    assert in_flight.held == {} and in_flight.releases == 2


class ReleasesThatAlwaysFail(InFlightInMemory):
    async def release(self, keys: Sequence[UUID], holder: UUID) -> None:
        raise ConnectionRefusedError("PostgreSQL is away")


async def test_a_process_stopping_while_postgres_is_away_stops_and_leaves_its_claims_to_go_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(in_flight_module, "RELEASE_RETRY_S", 0.01)
    in_flight = ReleasesThatAlwaysFail()
    copies = OneCopyAtATime(in_flight)
    turn = Claim(uuid7(), "link version", turn=True)
    async with copies.held([turn], 1.0):
        pass
    await copies.let_go(timeout_s=0.1)
    assert in_flight.held == {turn.key: copies.holder}  # taken over by others once stale
    await asyncio.sleep(0)  # the cancelled task ends
    assert not copies.releasing()


async def logged_with(registry: WriteSide, content: bytes) -> UUID:
    command = LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(registry.stored_file(content),))
    return (await registry(command)).subject_id


async def test_a_deletion_of_latest_refuses_a_version_logged_while_it_waited_for_its_turn() -> None:
    # `latest` moved to a new version between the turn the deletion took (the old version's) and its decision: it
    # deleted the new version outside that version's turn, beside a link of it, and the deleted version stayed
    # linked, holding `prod`.
    registry = WriteSide()
    first = await logged_with(registry, b"v0")
    await logged_with(registry, b"v1")
    looked_up = registry.read_models.registry.artifact_version_by_ref
    asked: list[tuple[str, ...]] = []

    async def a_version_logged_meanwhile(*ref: str) -> dict | None:
        asked.append(ref)
        if len(asked) == 1:  # when the turn was taken, v1 was not logged yet
            return registry.read_models.registry.versions[first]
        return await looked_up(*ref)

    registry.read_models.registry.artifact_version_by_ref = a_version_logged_meanwhile  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="latest moved to another version while this command waited \\(now v1\\)"):
        await registry(DeleteArtifactVersion(**COLLECTION, version="latest"), ADMIN)
    assert "artifacts.version_deleted" not in registry.appended_types()


async def test_an_alias_added_while_its_version_is_deleted_is_refused_not_left_on_the_deleted_version() -> None:
    registry = WriteSide(ALogThatTakesAMoment())
    await logged_with(registry, b"v0")
    await registry(EditArtifactVersion(**COLLECTION, version="v0", aliases_added=("champion",)))
    await logged_with(registry, b"v1")
    edit = EditArtifactVersion(**COLLECTION, version="v1", aliases_added=("champion",))
    deletion = DeleteArtifactVersion(**COLLECTION, version="v1")

    answers = await asyncio.gather(registry(edit, MEMBER), registry(deletion, ADMIN), return_exceptions=True)

    assert not any(isinstance(a, Exception) and not isinstance(a, NotFound | Conflict) for a in answers), answers
    # `champion` left v0 for v1 only if v1 lives on; decided beside the deletion, it left v0 for a version the
    # deletion (which saw no alias on it) took away, and no version held it any more.
    assert await registry.read_models.registry.artifact_version_by_ref(*COLLECTION.values(), "champion"), answers


async def test_one_client_chosen_id_sent_by_two_callers_into_two_collections_is_one_version() -> None:
    # Each found the id free and both were told yes; the projection kept one version, and the other caller's,
    # acknowledged, lived only in the audit log.
    registry = WriteSide(ALogThatTakesAMoment())
    chosen = uuid7()

    def logging_into(name: str) -> LogArtifactVersion:
        manifest = (registry.stored_file(name.encode()),)
        fields = {**COLLECTION, "name": name}
        return LogArtifactVersion(**fields, artifact_type="model", manifest=manifest, artifact_version_id=chosen)

    answers = await asyncio.gather(
        registry(logging_into("alices"), ADMIN), registry(logging_into("bobs"), MEMBER), return_exceptions=True
    )

    assert sum(isinstance(a, Conflict) for a in answers) == 1, answers
    assert registry.appended_types().count("artifacts.version_logged") == 1


async def test_the_same_files_logged_again_with_an_alias_beside_the_deletion_of_that_version_never_lose_the_alias() -> (
    None
):
    # The alias went onto the newest version in the collection's turn only: the deletion, which saw the version
    # hold no alias, took it away with the version, and `best` was gone from the collection.
    registry = WriteSide(ALogThatTakesAMoment())
    first = await registry(
        LogArtifactVersion(
            **COLLECTION, artifact_type="model", manifest=(registry.stored_file(b"0"),), aliases=("best",)
        )
    )
    newest = registry.stored_file(b"1")
    await registry(LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(newest,)))
    again = LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(newest,), aliases=("best",))

    answers = await asyncio.gather(
        registry(again, MEMBER),
        registry(DeleteArtifactVersion(**COLLECTION, version="v1"), ADMIN),
        return_exceptions=True,
    )

    holders = [v for v in registry.read_models.registry.versions.values() if "best" in v["aliases"]]
    assert len(holders) == 1 and holders[0].get("deleted_at") is None, (answers, registry.appended_types())
    assert first.subject_id in registry.read_models.registry.versions


async def test_the_same_files_logged_again_and_sent_again_do_not_put_back_an_alias_moved_away_since() -> None:
    registry = WriteSide()
    file = registry.stored_file(b"same")
    await registry(LogArtifactVersion(**COLLECTION, artifact_type="model", manifest=(file,)))
    again = LogArtifactVersion(
        **COLLECTION, artifact_type="model", manifest=(file,), aliases=("best",), command_id=uuid7()
    )
    await registry(again, MEMBER)
    await registry(EditArtifactVersion(**COLLECTION, version="v0", aliases_removed=("best",)), MEMBER)

    retried = await registry(again, MEMBER)  # its answer was lost: the client sends it again, same command id

    assert retried.events == []
    assert registry.read_models.registry.versions[retried.subject_id]["aliases"] == []

"""The command path: who may, decide, append, then answer once the read models show it (read-your-writes), or
say honestly that they do not yet."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from support.write_side import ADMIN, MEMBER, VIEWER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotYetVisible, PermissionDenied
from modelreg.events.envelope import Envelope
from modelreg.events.log import LogPosition
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.services.commands import in_flight
from modelreg.services.commands.commands import FinishRun, LogArtifactVersion, StartRun, TagModel
from modelreg.services.commands.in_flight import claim_key

START = StartRun(entity="acme", project="fraud", run_id="r1")


async def test_an_accepted_command_answers_with_where_its_events_landed_once_they_show() -> None:
    registry = WriteSide()
    accepted = await registry(START, MEMBER)
    [record] = registry.log.events()
    assert accepted.positions == [record.position]
    assert ("acme", "fraud", "r1") in registry.read_models.registry.runs


async def test_events_caused_by_another_keep_its_correlation() -> None:
    registry = WriteSide()
    correlation, cause = uuid7(), uuid7()
    await registry(START, correlation_id=correlation, causation_id=cause)
    [started] = registry.appended()
    assert (started.correlation_id, started.causation_id) == (correlation, cause)


async def test_a_command_that_decides_nothing_appends_nothing() -> None:
    registry = WriteSide()
    await registry(TagModel(registered_model="fraud", tag="gbm"))
    again = await registry(TagModel(registered_model="fraud", tag="gbm"))
    assert (again.events, again.positions) == ([], [])


async def test_read_models_that_lag_are_reported_with_the_accepted_events() -> None:
    registry = WriteSide()
    registry.projections.lagging = True
    with pytest.raises(NotYetVisible, match="accepted as event\\(s\\) .*, but the read models are behind"):
        await registry(START)
    assert registry.appended_types() == ["runs.run_started"]


async def test_a_command_whose_stream_is_parked_says_it_shows_once_released() -> None:
    registry = WriteSide()
    await registry(START)
    registry.read_models.parked.park("registry", "run:acme/fraud/r1", registry.appended()[0], error="disk full")
    with pytest.raises(
        NotYetVisible, match=r"projection registry has parked run:acme/fraud/r1 after an error \(disk full\)"
    ):
        await registry(FinishRun(entity="acme", project="fraud", run_id="r1"))
    assert registry.appended_types() == ["runs.run_started", "runs.run_finished"]


async def test_a_caller_that_does_not_wait_gets_the_events_before_they_show() -> None:
    registry = WriteSide()
    accepted = await registry(START, wait_for_read_models=False)
    assert accepted.events and registry.read_models.registry.runs == {}


async def test_a_command_sent_again_before_its_first_copy_shows_is_applied_once() -> None:
    # The first answer was lost (its API was killed after the append): the client sends the same command again
    # while the read models have not applied the first copy yet.
    registry = WriteSide()
    start = START.model_copy(update={"command_id": uuid7()})
    await registry(start, MEMBER, wait_for_read_models=False)
    again = await registry(start, MEMBER)
    assert again.events == []
    assert registry.appended_types() == ["runs.run_started"]


async def test_a_version_logged_again_before_its_first_copy_shows_is_one_version() -> None:
    registry = WriteSide()
    log = LogArtifactVersion(
        entity="acme",
        project="fraud",
        name="gbm",
        artifact_type="model",
        manifest=(registry.stored_file(b"weights"),),
        artifact_version_id=uuid7(),
        command_id=uuid7(),
    )
    first = await registry(log, MEMBER, wait_for_read_models=False)
    again = await registry(log, MEMBER)
    assert (again.events, again.subject_id) == ([], first.subject_id)
    assert registry.appended_types() == ["artifacts.version_logged"]


async def test_a_version_id_read_off_the_log_before_the_registry_shows_it_names_no_second_version() -> None:
    # A subscriber of live events reads a version's id as soon as it is on the log. Sent under another name
    # without a command id, it was checked against the registry as it was, which did not show the first yet:
    # a second event with that id, whose run the lineage graph showed as the first version's producer.
    registry = WriteSide()
    file = registry.stored_file(b"weights")
    first = LogArtifactVersion(
        entity="acme", project="fraud", name="gbm", artifact_type="model", manifest=(file,), artifact_version_id=uuid7()
    )
    await registry(first, MEMBER, wait_for_read_models=False)
    taken = first.model_copy(update={"project": "other", "name": "copy"})
    with pytest.raises(Conflict, match="already exists with other content"):
        await registry(taken, ADMIN)
    assert registry.appended_types() == ["artifacts.version_logged"]


class ALogThatTakesAMoment(InMemoryEventLog):
    """Appending waits on the network, as on Kafka or PostgreSQL: other requests run meanwhile."""

    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        await asyncio.sleep(0.01)
        return await super().append(events)


async def test_copies_of_a_command_sent_at_the_same_moment_are_applied_once() -> None:
    # A client retrying while its first copy is still being carried out, or an attacker sending copies at once.
    registry = WriteSide(ALogThatTakesAMoment())
    start = START.model_copy(update={"command_id": uuid7()})
    answers = await asyncio.gather(*(registry(start, MEMBER) for _ in range(6)))
    assert registry.appended_types() == ["runs.run_started"]
    assert sum(1 for a in answers if a.events) == 1
    assert {a.subject_id for a in answers} == {"r1"}
    await registry.app.copies.let_go()
    assert registry.in_flight.held == {}


async def test_copies_waiting_in_one_process_ask_the_database_once_each() -> None:
    # A thousand copies sent at once must not turn into a thousand claims asked every 20 ms.
    registry = WriteSide(ALogThatTakesAMoment())
    start = START.model_copy(update={"command_id": uuid7()})
    await asyncio.gather(*(registry(start, MEMBER) for _ in range(50)))
    assert registry.appended_types() == ["runs.run_started"]
    assert registry.in_flight.asked == 50
    assert registry.app.copies.waiting() == 0


async def test_copies_of_a_version_with_its_client_chosen_id_sent_at_once_are_one_version() -> None:
    # Their command ids differ (or are missing): the version's id is what makes them one.
    registry = WriteSide(ALogThatTakesAMoment())
    file, version_id = registry.stored_file(b"weights"), uuid7()
    logs = [
        LogArtifactVersion(
            entity="acme",
            project="fraud",
            name="gbm",
            artifact_type="model",
            manifest=(file,),
            artifact_version_id=version_id,
        ).model_copy(update={"command_id": uuid7() if n % 2 else None})
        for n in range(6)
    ]
    answers = await asyncio.gather(*(registry(log, MEMBER) for log in logs))
    assert registry.appended_types() == ["artifacts.version_logged"]
    assert {a.subject_id for a in answers} == {version_id}


async def test_a_copy_that_waits_longer_than_a_command_takes_is_told_to_send_it_again() -> None:
    registry = WriteSide()
    start = START.model_copy(update={"command_id": uuid7()})
    held_by_another_copy = uuid7()
    assert not await registry.in_flight.claim([claim_key(start.command_id, MEMBER.actor)], held_by_another_copy)
    registry.app.read_your_writes_timeout_s = 0.05
    with pytest.raises(
        Conflict, match=f"another copy of this start run \\(id {start.command_id}\\) is still"
    ) as refused:
        await registry(start, MEMBER)
    assert refused.value.retriable  # nothing written: not NOT_YET_VISIBLE, which says it was accepted
    assert registry.appended() == []


class ALogThatTakesLong(InMemoryEventLog):
    async def append(self, events: Sequence[Envelope]) -> list[LogPosition]:
        await asyncio.sleep(0.2)
        return await super().append(events)


async def test_a_copy_that_takes_long_keeps_renewing_its_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    # Else another copy would take the claim over as a dead holder's, and apply the command twice.
    monkeypatch.setattr(in_flight, "RENEW_S", 0.02)
    registry = WriteSide(ALogThatTakesLong())
    await registry(START.model_copy(update={"command_id": uuid7()}), MEMBER)
    assert registry.in_flight.renewals >= 3
    await registry.app.copies.let_go()
    assert registry.in_flight.held == {}
    await asyncio.sleep(0.05)  # one renewal pass later, with nothing held, nothing renews any more
    assert not registry.app.copies.renewing()


async def test_copies_sent_by_someone_else_hold_up_nothing() -> None:
    # A version's id is visible to its readers: sending copies of a command under it must not stall its owner.
    registry = WriteSide()
    start = START.model_copy(update={"command_id": uuid7()})
    assert not await registry.in_flight.claim([claim_key(start.command_id, VIEWER.actor)], uuid7())
    await registry(start, MEMBER)
    assert registry.appended_types() == ["runs.run_started"]


async def test_a_caller_without_the_right_claims_nothing() -> None:
    registry = WriteSide()
    start = START.model_copy(update={"command_id": uuid7()})
    with pytest.raises(PermissionDenied):
        await registry(start, VIEWER)
    assert registry.in_flight.asked == 0


async def test_a_command_sent_again_while_the_read_models_lag_is_refused_until_they_catch_up() -> None:
    registry = WriteSide()
    start = START.model_copy(update={"command_id": uuid7()})
    await registry(start, MEMBER, wait_for_read_models=False)
    registry.projections.lagging = True
    with pytest.raises(Conflict, match="may have been accepted already.*send it again, with the same id") as refused:
        await registry(start, MEMBER)
    assert refused.value.retriable
    assert registry.appended_types() == ["runs.run_started"]


@pytest.mark.parametrize("config", [{"seed": 2**64}, {"seed": -(2**70)}], ids=["big", "negative"])
async def test_a_value_json_cannot_hold_is_refused_as_bad_input_and_nothing_is_appended(config: dict) -> None:
    registry = WriteSide()
    with pytest.raises(InvalidInput, match="cannot be stored as JSON .* integers must fit in 64 bits"):
        await registry(StartRun(entity="acme", project="fraud", run_id="r1", config=config), MEMBER)
    assert registry.log.events() == []


async def test_a_value_nested_deeper_than_json_holds_is_refused_as_bad_input() -> None:
    deep: dict = {}
    for _ in range(300):
        deep = {"d": deep}
    with pytest.raises(InvalidInput, match="cannot be stored as JSON"):
        await WriteSide()(StartRun(entity="acme", project="fraud", run_id="r1", config=deep), MEMBER)

"""The command path: who may, decide, append, then answer once the read models show it (read-your-writes), or
say honestly that they do not yet."""

from __future__ import annotations

import pytest
from support.write_side import MEMBER, WriteSide
from uuid_utils.compat import uuid7

from modelreg.errors import NotYetVisible
from modelreg.services.commands.commands import FinishRun, StartRun, TagModel

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

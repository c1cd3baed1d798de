"""Values a command's fields accept by their type but PostgreSQL would refuse when a projection applies the
event (parking its stream): refused at the door, saying what to send instead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from modelreg.events.automations import TriggerSpec
from modelreg.services.commands.commands import StartRun

RUN = {"entity": "acme", "project": "nature", "run_id": "r1"}


def test_a_start_claimed_in_year_one_is_refused_as_a_clock_never_set() -> None:
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))  # before year 1 in UTC: out of range
    with pytest.raises(ValidationError, match="is before 1970: check the clock"):
        StartRun(**RUN, occurred_at=year_one)
    assert StartRun(**RUN, occurred_at=datetime(2017, 5, 1, tzinfo=UTC_PLUS_2)).occurred_at is not None


def test_a_launch_job_id_longer_than_a_job_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="environment.launch.job_id must be a job id"):
        StartRun(**RUN, environment={"launch": {"job_id": "x" * 3200}})
    with pytest.raises(ValidationError, match="environment.launch.job_id must be a job id"):
        StartRun(**RUN, environment={"launch": {"job_id": {"nested": "object"}}})
    job = StartRun(**RUN, environment={"launch": {"job_id": "0195f7a2-7c5e-7000-8000-000000000001"}})
    assert job.environment["launch"]["job_id"].startswith("0195")


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -float("inf")])
def test_a_metric_threshold_must_be_a_finite_number(threshold: float) -> None:
    with pytest.raises(ValidationError, match="finite number"):
        TriggerSpec(event="metric_threshold", metric="loss", op=">", threshold=threshold)


UTC_PLUS_2 = timezone(timedelta(hours=2))

"""When an automation was on: the last switch recorded at or before an event decides, its creation the first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelreg.projections.triggers import was_on_at

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def switched(*changes: tuple[float, bool]) -> dict:
    return {"switched_at": [minute(m) for m, _ in changes], "switched_on": [on for _, on in changes]}


def test_an_automation_is_on_from_its_creation_until_switched_off() -> None:
    automation = switched((0, True), (2, False), (4, True))
    assert [was_on_at(automation, minute(m)) for m in (-1, 0, 1, 2, 3, 4, 5)] == [
        False,
        True,
        True,
        False,
        False,
        True,
        True,
    ]


def test_one_created_off_is_off_until_switched_on() -> None:
    assert [was_on_at(switched((0, False), (3, True)), minute(m)) for m in (1, 3)] == [False, True]


def test_switches_recorded_at_one_time_count_in_the_order_recorded() -> None:
    assert was_on_at(switched((0, True), (2, False), (2, True)), minute(2)) is True
    assert was_on_at(switched((0, True), (2, True), (2, False)), minute(2)) is False


def test_a_switch_stamped_earlier_than_the_one_before_it_still_counts_as_the_later() -> None:
    # Two API processes' clocks: the switch off recorded last, with a time a second before the switch on.
    assert was_on_at(switched((0, False), (5, True), (4.99, False)), minute(6)) is False

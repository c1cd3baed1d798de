"""A live subscriber resumes after the last event it saw, from the opaque point that event came with."""

from __future__ import annotations

import base64

import pytest

from modelreg.errors import InvalidInput
from modelreg.events.tail import decode_resume_point, encode_resume_point

ENDS = {0: 10, 1: 4, 2: 0}


def test_a_resume_point_gives_back_the_next_offset_of_every_partition() -> None:
    point = encode_resume_point("kafka", "modelreg.events", {0: 7, 1: 4, 2: 0})
    assert decode_resume_point(point, "kafka", "modelreg.events", ENDS) == {0: 7, 1: 4, 2: 0}


def test_a_partition_the_point_does_not_name_is_read_from_its_beginning() -> None:
    assert decode_resume_point(encode_resume_point("kafka", "t", {0: 3}), "kafka", "t", ENDS) == {0: 3, 1: 0, 2: 0}


@pytest.mark.parametrize(
    "point",
    [
        encode_resume_point("kafka", "other.topic", {0: 1}),  # another topic
        encode_resume_point("kafka", "modelreg.events", {0: 11}),  # ahead of the log: another installation
        encode_resume_point("kafka", "modelreg.events", {7: 0}),  # a partition this topic does not have
        "bm90LWEtY3Vyc29y",
        "%%%",
    ],
)
def test_a_point_that_is_not_one_of_this_log_is_refused(point: str) -> None:
    with pytest.raises(InvalidInput):
        decode_resume_point(point, "kafka", "modelreg.events", ENDS)


@pytest.mark.parametrize("offsets", ["0=-5", "-1=0", "0=+3", "0=5,1", "0= 5"])
def test_a_point_with_a_negative_or_garbled_offset_is_no_cursor_not_one_of_another_installation(offsets: str) -> None:
    point = base64.urlsafe_b64encode(f"t:modelreg.events\x1f{offsets}".encode()).decode()
    with pytest.raises(InvalidInput) as refused:
        decode_resume_point(point, "kafka", "modelreg.events", ENDS)
    assert (
        "pass the `cursor` of an event" in refused.value.message and "another installation" not in refused.value.message
    )


def test_a_cursor_of_the_postgresql_log_is_refused_after_the_registry_moved_to_kafka_under_the_same_topic() -> None:
    """`migrate-log` copies the events to Kafka under the same topic name: the PostgreSQL log's offsets (one
    partition) are no places in the topic's partitions, and resuming there would skip and repeat events."""
    point = encode_resume_point("postgres", "modelreg.events", {0: 3})
    with pytest.raises(InvalidInput) as refused:
        decode_resume_point(point, "kafka", "modelreg.events", ENDS)
    assert (
        "postgres event log this registry had before it moved to Kafka (`modelreg migrate-log`)"
        in refused.value.message
    )
    assert "Subscribe again without `after`" in refused.value.message


def legacy(offsets: str) -> str:
    """A cursor as builds before the log's kind was in it made them."""
    return base64.urlsafe_b64encode(f"t:modelreg.events\x1f{offsets}".encode()).decode()


def test_a_cursor_made_before_cursors_named_their_log_still_resumes_where_it_can_only_be_of_this_log() -> None:
    assert decode_resume_point(legacy("0=7,1=4,2=0"), "kafka", "modelreg.events", ENDS) == {0: 7, 1: 4, 2: 0}
    assert decode_resume_point(legacy("0=7"), "postgres", "modelreg.events", {0: 10}) == {0: 7}
    # The PostgreSQL log's one partition alone, on a Kafka topic of three: a cursor from before `migrate-log`.
    with pytest.raises(InvalidInput, match="before it moved to Kafka"):
        decode_resume_point(legacy("0=7"), "kafka", "modelreg.events", ENDS)


@pytest.mark.parametrize("tail", ["\x1fkafka", "\x1fk:kafka\x1fk:kafka", "\x1fk:", "\x1fk:" + "x" * 500])
def test_a_cursor_with_more_after_its_offsets_than_its_log_is_no_cursor(tail: str) -> None:
    point = base64.urlsafe_b64encode(f"t:modelreg.events\x1f0=1{tail}".encode()).decode()
    with pytest.raises(InvalidInput, match="pass the `cursor` of an event"):
        decode_resume_point(point, "kafka", "modelreg.events", ENDS)


def test_a_cursor_of_a_kafka_log_on_a_postgresql_log_is_refused_without_blaming_a_move() -> None:
    point = encode_resume_point("kafka", "modelreg.events", {0: 3, 1: 0})
    with pytest.raises(InvalidInput) as refused:
        decode_resume_point(point, "postgres", "modelreg.events", {0: 10})
    assert "a cursor of the kafka event log, and this registry's log is postgres" in refused.value.message
    assert "migrate-log" not in refused.value.message

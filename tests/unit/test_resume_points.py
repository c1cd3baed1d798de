"""A live subscriber resumes after the last event it saw, from the opaque point that event came with."""

from __future__ import annotations

import base64

import pytest

from modelreg.errors import InvalidInput
from modelreg.events.tail import decode_resume_point, encode_resume_point

ENDS = {0: 10, 1: 4, 2: 0}


def test_a_resume_point_gives_back_the_next_offset_of_every_partition() -> None:
    point = encode_resume_point("modelreg.events", {0: 7, 1: 4, 2: 0})
    assert decode_resume_point(point, "modelreg.events", ENDS) == {0: 7, 1: 4, 2: 0}


def test_a_partition_the_point_does_not_name_is_read_from_its_beginning() -> None:
    assert decode_resume_point(encode_resume_point("t", {0: 3}), "t", ENDS) == {0: 3, 1: 0, 2: 0}


@pytest.mark.parametrize(
    "point",
    [
        encode_resume_point("other.topic", {0: 1}),  # another topic
        encode_resume_point("modelreg.events", {0: 11}),  # ahead of the log: another installation
        encode_resume_point("modelreg.events", {7: 0}),  # a partition this topic does not have
        "bm90LWEtY3Vyc29y",
        "%%%",
    ],
)
def test_a_point_that_is_not_one_of_this_log_is_refused(point: str) -> None:
    with pytest.raises(InvalidInput):
        decode_resume_point(point, "modelreg.events", ENDS)


@pytest.mark.parametrize("offsets", ["0=-5", "-1=0", "0=+3", "0=5,1", "0= 5"])
def test_a_point_with_a_negative_or_garbled_offset_is_no_cursor_not_one_of_another_installation(offsets: str) -> None:
    point = base64.urlsafe_b64encode(f"t:modelreg.events\x1f{offsets}".encode()).decode()
    with pytest.raises(InvalidInput) as refused:
        decode_resume_point(point, "modelreg.events", ENDS)
    assert (
        "pass the `cursor` of an event" in refused.value.message and "another installation" not in refused.value.message
    )

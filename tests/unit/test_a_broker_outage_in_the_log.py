"""While a broker is away, aiokafka logs every attempt of every client (a projector: 4,854 lines in a 67 s outage,
none naming the broker). Each kind of line is let through once, then once a minute with how many were held back,
naming the broker's address."""

from __future__ import annotations

import logging

from modelreg.events.kafka_lines import RepeatedLines, summarise_repeated_lines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def line(message: str, *args: object, name: str = "aiokafka", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_a_line_repeated_for_a_minute_is_shown_once_then_with_how_many_were_held_back() -> None:
    clock = Clock()
    summary = RepeatedLines("kafka-0:9092", clock=clock)
    shown = []
    for second in range(0, 121):
        clock.now = 1000.0 + second
        for _ in range(70):  # about what a projector logged each second
            record = line("Unable connect to node with id %s: %s", 1, "[Errno 111] Connection refused")
            if summary.filter(record):
                shown.append(record.getMessage())

    assert shown == [
        "Unable connect to node with id 1: [Errno 111] Connection refused (Kafka at kafka-0:9092)",
        "Unable connect to node with id 1: [Errno 111] Connection refused (Kafka at kafka-0:9092; 4199 more like it "
        "in the last 60 s)",
        "Unable connect to node with id 1: [Errno 111] Connection refused (Kafka at kafka-0:9092; 4199 more like it "
        "in the last 60 s)",
    ]


def test_each_kind_of_line_is_shown_and_information_passes_untouched() -> None:
    summary = RepeatedLines("kafka-0:9092", clock=Clock())
    kinds = [
        line("Unable to update metadata from %s", [1]),
        line("Got error produce response: %s", "NodeNotReadyError", name="aiokafka.producer.sender"),
        line("Unable to update metadata from %s", [1], name="aiokafka.admin.client"),
    ]
    assert [summary.filter(record) for record in kinds] == [True, True, True]
    said = line("Discovered coordinator %s for group %s", 1, "modelreg.projections", level=logging.INFO)
    assert summary.filter(said) and said.getMessage() == "Discovered coordinator 1 for group modelreg.projections"


def test_every_aiokafka_logger_gets_one_summary_whoever_starts_a_log() -> None:
    first = summarise_repeated_lines("kafka-0:9092")
    again = summarise_repeated_lines("kafka-0:9092")  # a process waiting for its broker starts its log again

    assert again is first
    for name in ("aiokafka", "aiokafka.producer.sender", "aiokafka.consumer.fetcher", "modelreg.events.kafka_log"):
        summaries = [f for f in logging.getLogger(name).filters if isinstance(f, RepeatedLines)]
        assert summaries == [first], name


def test_lines_logged_already_formatted_are_not_remembered_without_end() -> None:
    clock = Clock()
    summary = RepeatedLines("kafka-0:9092", clock=clock, most_kinds=50)
    for n in range(10_000):  # a message with a changing id in it, formatted before it was logged: a kind each
        clock.now += 0.01
        assert summary.filter(line(f"request {n} to node 1 failed"))

    assert summary.kinds_remembered == 50
    summary.filter(line("Unable connect to node with id %s: %s", 1, "refused"))
    assert not summary.filter(line("Unable connect to node with id %s: %s", 1, "refused"))  # the latest still held


def test_a_line_whose_message_is_not_text_is_shown_with_the_address() -> None:
    record = line("%s")
    record.msg, record.args = {"unhashable": ["a dict as the message"]}, ()

    assert RepeatedLines("kafka-0:9092", clock=Clock()).filter(record)
    assert record.getMessage() == "{'unhashable': ['a dict as the message']} (Kafka at kafka-0:9092)"

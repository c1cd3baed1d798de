"""A broker that does not answer while the API appends or reads where the log ends: the caller is told the event
log is not answering and to send the change again (a retriable UNAVAILABLE), not an internal error with an
incident id. The errors are aiokafka's own, as a stalled broker makes the producer and consumer raise them. While
the broker is known to be away, an append is refused before anything of it is sent: nothing is recorded later."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from modelreg.errors import Unavailable
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.kafka_log import KafkaEventLog, _unavailable_while_not_answering
from modelreg.events.log import EventLogNotAnswering
from modelreg.events.runs import RunStarted
from modelreg.graphql.errors import reported


@pytest.mark.parametrize("stalled", [KafkaTimeoutError(), KafkaConnectionError("Connection at kafka-0:9092 closed")])
def test_a_broker_that_does_not_answer_is_a_retriable_unavailable(stalled: Exception) -> None:
    with pytest.raises(Unavailable, match=r"the event log \(Kafka\) is not answering: appending events") as refused:
        with _unavailable_while_not_answering("appending events"):
            raise stalled

    answered = reported(refused.value, "logMetricBatch")
    assert answered.extensions == {"code": "UNAVAILABLE", "retriable": True}
    assert "incident" not in answered.message and "send it again" in answered.message
    assert "kafka-0" not in answered.message  # the broker's address is the installation's own: in the server's log


def test_an_event_the_log_refuses_is_not_mistaken_for_an_outage() -> None:
    with pytest.raises(MessageSizeTooLargeError):
        with _unavailable_while_not_answering("appending events"):
            raise MessageSizeTooLargeError("an event of 9000000 bytes is over the log's 8388608 bytes")


def test_a_read_the_broker_did_not_answer_changed_nothing_and_the_operator_is_told_where() -> None:
    with pytest.raises(Unavailable, match="nothing was changed: send it again shortly") as refused:
        with _unavailable_while_not_answering("reading where the log ends", where="kafka-0:9092", recording=False):
            raise KafkaTimeoutError("no answer within 5 s")

    assert isinstance(refused.value, EventLogNotAnswering)
    assert "kafka-0" not in refused.value.message
    assert refused.value.what_happened == (
        "the event log (Kafka at kafka-0:9092) did not answer reading where the log ends "
        "(KafkaTimeoutError: no answer within 5 s)"
    )


def started_run() -> Envelope:
    payload = RunStarted(entity="acme", project="outage", run_id="r1")
    return Envelope.new(payload, stream="run:acme/outage/r1", actor=Actor(kind="service", id="tests"))


async def test_an_append_while_the_broker_is_known_away_is_refused_before_anything_is_handed_to_the_producer() -> None:
    log = KafkaEventLog("kafka-0:9092", "modelreg.events")  # not started: it has no producer to hand anything to
    log.broker.not_answered(KafkaConnectionError("Connect call failed ('10.0.0.7', 9092)"))

    with pytest.raises(EventLogNotAnswering, match="so nothing was recorded: send it again shortly") as refused:
        await log.append([started_run()])

    assert refused.value.retriable and refused.value.still_held is None
    assert "kafka-0" not in refused.value.message and "kafka-0:9092" in refused.value.what_happened
    log.broker.answered()  # its watch, or an append acknowledged: appends are handed to the producer again
    with pytest.raises(RuntimeError, match="start\\(\\) was not called"):
        await log.append([started_run()])

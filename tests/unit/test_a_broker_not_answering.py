"""A broker that does not answer while the API appends or reads where the log ends: the caller is told the event
log is not answering and to send the change again (a retriable UNAVAILABLE), not an internal error with an
incident id. The errors are aiokafka's own, as a stalled broker makes the producer and consumer raise them."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from modelreg.errors import Unavailable
from modelreg.events.kafka_log import _unavailable_while_not_answering
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

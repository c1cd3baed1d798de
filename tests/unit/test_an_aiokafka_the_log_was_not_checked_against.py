"""A projector's subscription, stopped during an outage, closes its consumer's connections through an aiokafka
internal (KafkaSubscription.close). Another aiokafka, without it, is refused when the log starts, saying what it
lacks, rather than failing as a projector stops in an outage (an AttributeError in its shutdown)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from modelreg.events.kafka_log import AiokafkaInternalsMissing, consumer_internals_missing


async def test_the_aiokafka_installed_has_every_internal_the_log_relies_on() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        assert consumer_internals_missing(consumer) == []
    finally:
        await consumer.stop()


def test_a_consumer_without_it_is_named_with_what_it_lacks() -> None:
    missing = consumer_internals_missing(object())  # type: ignore[arg-type]  # another aiokafka's consumer

    assert missing == ["AIOKafkaConsumer._client.close"]
    assert "lacks what the event log relies on of its internals" in str(AiokafkaInternalsMissing(missing))

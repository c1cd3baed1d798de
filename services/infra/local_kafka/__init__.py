"""A real single-node Apache Kafka (KRaft) run from its Maven Central jars, for development, tests and CI."""

from modelreg.services.infra.local_kafka.broker import LocalKafka, fetch_kafka_jars

__all__ = ["LocalKafka", "fetch_kafka_jars"]

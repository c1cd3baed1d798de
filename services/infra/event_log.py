"""Which event log a process talks to: Kafka when it is configured, else the one in Postgres."""

from __future__ import annotations

from modelreg.events.log import EventLog
from modelreg.services.settings import Settings


def event_log_for(settings: Settings) -> EventLog:
    if settings.kafka_bootstrap_servers:
        from modelreg.events.kafka_log import KafkaEventLog

        return KafkaEventLog(settings.kafka_bootstrap_servers, settings.topic, settings.partitions)
    from modelreg.events.postgres_log import PostgresEventLog

    return PostgresEventLog(settings.database_url, settings.topic)

"""Which event log a process talks to: Kafka when it is configured, else the one in Postgres."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from modelreg.events.log import EventLog
from modelreg.services.settings import Settings


def event_log_for(
    settings: Settings, pool: asyncpg.Pool | None = None, projected_topics: Collection[str] = ()
) -> EventLog:
    """`pool`: the process's pool, which the log in Postgres then reads and writes through (else its own).
    `projected_topics`: those its database was built from; a topic missing beside them is not started."""
    if settings.kafka_bootstrap_servers:
        from modelreg.events.kafka_log import KafkaEventLog

        return KafkaEventLog(
            settings.kafka_bootstrap_servers,
            settings.topic,
            settings.partitions,
            group_instance_id=settings.kafka_instance_id,
            create_topic=settings.missing_topic == "create",
            projected_topics=projected_topics,
        )
    from modelreg.events.postgres_log import PostgresEventLog

    return PostgresEventLog(settings.database_url, settings.topic, pool=pool, projected_topics=projected_topics)

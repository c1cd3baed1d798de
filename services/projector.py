"""The projector process: runs every projection (or the ones named) against the log until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

from modelreg.services.bootstrap import ProcessParts, given_or_own
from modelreg.services.instance_name import instance_name_held, until_done_or_lost
from modelreg.services.projections_catalog import PROJECTIONS
from modelreg.services.settings import Settings

log = logging.getLogger(__name__)


# How many young objects the collector lets pile up before it walks them. A walk costs ~0.5-2 µs an object and
# stops the event loop. The count is of objects alive, not allocated: a batch's objects that die with it are
# never walked unless the threshold falls inside the batch. A projector's batch of 2,000 records holds about
# 50,000 objects, and projecting makes almost no cyclic garbage (49 objects in 20,000 events), so at 50,000
# every walk went over a batch still in use: about 10 µs of CPU per event, for nothing. Above a batch (a
# rebuild's 20,000 records hold about 500,000) walks are rare, and they find what little garbage there is.
BATCH_YOUNG_OBJECTS = 1_000_000  # a process that only applies batches: throughput, no one waits on a pause
SERVING_YOUNG_OBJECTS = 3_000  # a process that answers requests: a pause of a few ms, not ~100 ms


def tune_gc(young_objects: int = BATCH_YOUNG_OBJECTS) -> None:
    """A batch allocates thousands of short-lived objects; with the default thresholds the collector
    walks every long-lived object (modules, pydantic schemas, pools) many times per batch. Freeze what
    exists after start-up and collect the young generation less often: `young_objects` at a time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_objects, 50, 100)


async def run_projector(
    settings: Settings, stopping: asyncio.Event, names: Sequence[str] = (), parts: ProcessParts | None = None
) -> None:
    """`parts`: the process's own (services/bootstrap.py) when it does more than project."""
    names = list(names) or list(PROJECTIONS)
    # Each projection applies a batch on a connection of its own, side by side with the others.
    async with given_or_own(parts, settings, pool_size=len(names) + 2, durable_commits=False) as wired:
        reader = wired.log_reader(names)
        if parts is None:  # a process of its own; in `modelreg server` the server has tuned it for serving
            tune_gc()
        name = settings.kafka_instance_id if settings.kafka_bootstrap_servers else None
        if name is None:
            log.info("projector: running %s on topic %s", ", ".join(names), settings.topic)
            await reader.run(stopping)
            return
        # Kafka keeps a member's name per group (the projections' names), in groups not kept per topic.
        scope = f"{settings.topic} modelreg.{reader.reader}"
        async with instance_name_held(settings.database_url, name, stopping, scope=scope) as lost:
            if stopping.is_set():
                return
            log.info("projector %r: running %s on topic %s", name, ", ".join(names), settings.topic)
            await until_done_or_lost(lambda: reader.run(stopping), lost)

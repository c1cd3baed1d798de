"""aiokafka's warnings and errors (and the event log's own), each kind once a minute with how many were held back.

While a broker is away, aiokafka logs every attempt of every client in the process: a projector logged 4,854 lines
in a 67 s outage ("Unable connect to node with id 1: [Errno 111] Connection refused", "Unable to update metadata
from [1]"), which buried every other line and never named the broker. A filter on aiokafka's loggers lets the first
line of each kind through (a kind: the logger and the message before its arguments), then one a minute saying how
many like it were held back, each naming the bootstrap address. The event log's own line for each request the
broker did not answer (kafka_log.py) goes the same way: a background job asking every few seconds repeated it. The
outage itself is said once each way by broker_watch.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

# aiokafka's modules, each logging under its own name: a filter applies to its own logger's lines only.
import aiokafka.admin  # noqa: F401 -- creates its logger
import aiokafka.consumer  # noqa: F401
import aiokafka.producer  # noqa: F401

SHOWN_EVERY_S = 60.0
# Kinds remembered at most: aiokafka's templates are a few dozen, yet a line logged already formatted (an f-string,
# a message with a changing id) is a kind of its own each time: past this, the kinds shown longest ago are forgotten.
MOST_KINDS = 500
SUMMARISED = ("aiokafka", "modelreg.events.kafka_log")  # loggers, with those under them


@dataclass
class _Kind:
    shown_at: float
    held_back: int = 0


class RepeatedLines(logging.Filter):
    def __init__(
        self,
        where: str,
        every_s: float = SHOWN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        most_kinds: int = MOST_KINDS,
    ) -> None:
        super().__init__()
        self.where = where
        self.every_s = every_s
        self.clock = clock
        self.most_kinds = most_kinds
        self._kinds: dict[tuple[str, str], _Kind] = {}  # oldest shown first

    @property
    def kinds_remembered(self) -> int:
        return len(self._kinds)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, str(record.msg))  # a message may be any object: an exception, a dict
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen.shown_at < self.every_s:
            seen.held_back += 1
            return False
        held_back = seen.held_back if seen is not None else 0
        self._kinds.pop(kind, None)
        self._kinds[kind] = _Kind(shown_at=now)
        while len(self._kinds) > self.most_kinds:
            del self._kinds[next(iter(self._kinds))]
        # The record is the one every handler then formats (a filter on the logger runs before them): its message
        # is set formatted, with what is added, for text and JSON lines alike (services/json_logs.py: getMessage).
        message = record.getMessage()
        said = [] if self.where in message else [f"Kafka at {self.where}"]
        if held_back:
            said.append(f"{held_back} more like it in the last {self.every_s:g} s")
        record.msg = f"{message} ({'; '.join(said)})" if said else message
        record.args = None
        return True


def summarise_repeated_lines(where: str) -> RepeatedLines:
    """Puts one RepeatedLines naming `where` on every logger SUMMARISED, unless one naming it is there already (a
    process waiting for its broker starts its log again and again: the count goes on)."""
    for root in SUMMARISED:  # made if not yet (a filter is the logger's own: one made after it would have none)
        logging.getLogger(root)
    loggers = [
        logger
        for name, logger in list(logging.root.manager.loggerDict.items())
        if any(name == root or name.startswith(f"{root}.") for root in SUMMARISED)
        and isinstance(logger, logging.Logger)
    ]
    kept = [f for f in logging.getLogger("aiokafka").filters if isinstance(f, RepeatedLines) and f.where == where]
    summary = kept[0] if kept else RepeatedLines(where)
    for logger in loggers:
        for other in [f for f in logger.filters if isinstance(f, RepeatedLines) and f is not summary]:
            logger.removeFilter(other)
        logger.addFilter(summary)  # once: a filter already there is not added again
    return summary

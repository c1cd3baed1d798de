"""One line when the process loses Kafka, one when it has it back.

aiokafka says nothing of the sort: a broker outage was thousands of its lines about node ids ("Unable connect to
node with id 1"), never the address, and no line of ours. The event log asks the broker where the log ends every few
seconds (the question /readyz asks, a few bytes) and says when the answers stop and when they come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka.errors import KafkaError, KafkaTimeoutError

log = logging.getLogger(__name__)

ASKED_EVERY_S = 5.0


class BrokerWatch:
    def __init__(
        self, where: str, ask: Callable[[], Awaitable[object]], *, every_s: float = ASKED_EVERY_S, within_s: float = 3.0
    ) -> None:
        """`ask`: a question the broker answers (the log's end offsets); `within_s`: how long an answer may take."""
        self.where = where
        self.ask = ask
        self.every_s = every_s
        self.within_s = within_s
        self.away_since: float | None = None  # time.time() of the first question left unanswered, while it lasts

    async def run(self) -> None:
        slow = 0  # questions in a row answered late, or not at all
        while True:
            await asyncio.sleep(self.every_s)
            try:
                async with asyncio.timeout(self.within_s):
                    await self.ask()
            except (TimeoutError, KafkaTimeoutError) as exc:
                # Twice in a row: once may be a busy machine (a JVM's pause, two cores shared), and while the broker
                # is taken for away every append is refused.
                slow += 1
                if slow >= 2:
                    self.not_answered(exc)
            except (KafkaError, OSError) as exc:  # refused, reset: the broker is not there
                self.not_answered(exc)
            else:
                slow = 0
                self.answered()

    def not_answered(self, exc: BaseException) -> None:
        if self.away_since is not None:
            return
        self.away_since = time.time()
        why = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {self.within_s:g} s"
        log.error(
            "Kafka at %s is unreachable (%s): nothing is appended to the event log or read from it until it answers "
            "again (commands are refused UNAVAILABLE, projections and automations wait)",
            self.where,
            why,
        )

    def answered(self) -> None:
        if self.away_since is None:
            return
        since, self.away_since = self.away_since, None
        log.warning(
            "Kafka at %s answers again, after %.0f s unreachable (since %s)",
            self.where,
            time.time() - since,
            datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )

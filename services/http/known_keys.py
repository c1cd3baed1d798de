"""The API keys an API process looked up lately, kept until the identity read model changes.

Every request names its key, and looking it up (its principal, grants, limits and the private scopes) was one
round trip to PostgreSQL per request. The answer changes only when the identity read model does, and
PostgreSQL announces each such change on a channel (projections/identity.py, IDENTITY_CHANGED_CHANNEL) that
this process hears on its read-your-writes listener: then every key known is forgotten.

- In the process that revoked a key (or changed a grant, or made a team private), the announcement is heard
  before the command's answer is sent, since the command waits for the identity projection's commit on the
  same connection. The next request with that key is refused, as it was without this.
- Another API process hears it within the notification's delivery, a few milliseconds: a request arriving
  there meanwhile is served as if it had arrived just before the change.
- A lookup that an announcement overtakes is not kept. Without a listener (its connection lost), every
  request looks its key up again, and asks for a new listener; one that comes back forgets every key, since
  what changed meanwhile went unheard. Unknown keys are never kept.
- A connection can die without a word (a failover behind a virtual address, a firewall dropping it): it looks
  open and hears nothing. So every key is forgotten whenever a read-your-writes waiter had to read the
  positions itself (no notification came in time), and a key is kept MAX_AGE_S at most in any case.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from typing import Any

from modelreg.projections.identity import IDENTITY_CHANGED_CHANNEL
from modelreg.projections.progress import ProjectionProgress
from modelreg.services.http.key_uses import KeyLookup, KeyUses

KEPT = 10_000
MAX_AGE_S = 5.0  # a busy client's key is looked up once in this time, not once per request


class KnownKeys:
    def __init__(
        self,
        identity: KeyLookup,
        progress: ProjectionProgress,
        kept: int = KEPT,
        max_age_s: float = MAX_AGE_S,
        uses: KeyUses | None = None,
    ) -> None:
        self.identity = identity
        self.uses = uses
        self.progress = progress
        self.kept = kept
        self.max_age_s = max_age_s
        self._known: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._changes = 0

    async def start(self) -> None:
        await self.progress.also_listen(IDENTITY_CHANGED_CHANNEL, self.forget)

    def forget(self) -> None:
        self._changes += 1
        self._known.clear()

    async def principal_of_key(self, key_sha256: str) -> dict[str, Any] | None:
        found = await self._look_up(key_sha256)
        if found is not None and self.uses is not None:
            self.uses.note(found["key_id"])
        return found

    async def _look_up(self, key_sha256: str) -> dict[str, Any] | None:
        if not self.progress.listening:
            self._known.clear()
            found = await self.identity.principal_of_key(key_sha256)
            with contextlib.suppress(Exception):  # no listener yet: the next request tries again
                await self.progress.listen_again()
            return found
        now = time.monotonic()
        known = self._known.get(key_sha256)
        if known is not None and now - known[0] < self.max_age_s:
            self._known.move_to_end(key_sha256)
            return known[1]
        changes = self._changes
        found = await self.identity.principal_of_key(key_sha256)
        if found is not None and changes == self._changes and self.progress.listening:
            self._known[key_sha256] = (now, found)
            self._known.move_to_end(key_sha256)
            if len(self._known) > self.kept:
                self._known.popitem(last=False)
        return found

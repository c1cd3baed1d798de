"""Projections that stopped moving, as /healthz sees them: with no projector running, every write is refused
NOT_YET_VISIBLE while /healthz said ok (its lag grew, which reads as load). A projection whose lag has not shrunk
for STALLED_AFTER_S, its position unchanged, is reported stalled and the installation degraded."""

from __future__ import annotations

STALLED_AFTER_S = 30.0


class ProjectionStalls:
    """Where each lagging projection was when it was first seen there. Fed by each /healthz reading: a monitor
    that asks every few seconds learns of a stall STALLED_AFTER_S after it began."""

    def __init__(self, stalled_after_s: float = STALLED_AFTER_S) -> None:
        self.stalled_after_s = stalled_after_s
        self._seen: dict[str, tuple[int, float]] = {}  # name -> (events applied, when first seen at that count)

    def stalled_for(self, name: str, applied: int, lag: int | None, now: float) -> float | None:
        """How long the projection has applied nothing while events wait, once that is STALLED_AFTER_S or more."""
        if not lag:
            self._seen.pop(name, None)
            return None
        seen = self._seen.get(name)
        if seen is None or seen[0] != applied:
            self._seen[name] = (applied, now)
            return None
        waited = now - seen[1]
        return waited if waited >= self.stalled_after_s else None

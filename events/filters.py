"""Which events a subscriber asked for: by type and by scope (stream, entity, registered model)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelreg.errors import InvalidInput, listed
from modelreg.events.catalog import EVENT_TYPES
from modelreg.events.envelope import Envelope


def known_types(types: Iterable[str]) -> frozenset[str]:
    """Event types someone typed (a subscription's, the audit log's filter), each one modelreg writes: a misspelt
    type is refused, saying which are known, rather than matching nothing without a word."""
    wanted = frozenset(types)
    unknown = sorted(wanted - EVENT_TYPES.keys())
    if unknown:
        # The first few: the whole list sent back a 5 MB answer to 600,000 misspelt names.
        raise InvalidInput(f"unknown event type(s) {listed(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}")
    return wanted


@dataclass(frozen=True)
class EventFilter:
    """Every condition given must hold; a condition left out (None) lets everything through."""

    types: frozenset[str] | None = None
    stream_prefix: str | None = None
    entity: str | None = None  # runs and artifacts of the entity's projects
    registered_model: str | None = None  # links, aliases, card and tags of the registered model

    @classmethod
    def of(
        cls,
        types: Iterable[str] | None = None,
        stream_prefix: str | None = None,
        entity: str | None = None,
        registered_model: str | None = None,
    ) -> EventFilter:
        """A filter from what a subscriber typed; a misspelt type is refused rather than never matching."""
        wanted = known_types(types) if types is not None else None
        return cls(wanted, stream_prefix or None, entity or None, registered_model or None)

    def matches(self, envelope: Envelope) -> bool:
        if self.types is not None and envelope.type not in self.types:
            return False
        if self.stream_prefix is not None and not envelope.stream.startswith(self.stream_prefix):
            return False
        # Scopes are read from the payload, where every event of an entity or a model names it.
        if self.entity is not None and getattr(envelope.payload, "entity", None) != self.entity:
            return False
        if (
            self.registered_model is not None
            and getattr(envelope.payload, "registered_model", None) != self.registered_model
        ):
            return False
        return True

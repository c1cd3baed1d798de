"""The command path with no database: the real Application and handlers, the in-memory log, and read models
in dicts that follow the appended events (memory_read_models.py). What handler unit tests stand on."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Literal
from uuid import UUID

from modelreg.events.artifacts import ManifestEntry
from modelreg.events.codec import decode
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import Role
from modelreg.events.memory_log import InMemoryEventLog
from modelreg.services.commands.access import Caller
from modelreg.services.commands.application import Accepted, Application
from modelreg.services.commands.commands import Command
from modelreg.services.commands.in_flight import InFlightInMemory
from modelreg.services.projections_catalog import shown_to_commands
from support.memory_read_models import CaughtUpProjections, MemoryBlobs, MemoryReadModels


def caller(
    role: Role,
    who: str = "",
    *,
    grants: dict[str, Role] | None = None,
    kind: Literal["user", "service", "automation"] = "user",
    limits: tuple[str, ...] = (),
) -> Caller:
    """A key holder: `caller("member")` is user:member-key, a member everywhere unless `grants` say otherwise;
    `limits`: the scopes its key is limited to."""
    principal = Actor(kind=kind, id=who or f"{role}-key")
    key_id = hashlib.sha256(principal.id.encode()).hexdigest()[:12]  # shaped as the server's key ids are
    return Caller(principal, role, grants or {}, key_id=key_id, limits=limits)


ADMIN = caller("admin", "ada")
MEMBER = caller("member", "mo")
VIEWER = caller("viewer", "vi")


class WriteSide:
    def __init__(self, log: InMemoryEventLog | None = None) -> None:
        self.log = log or InMemoryEventLog()
        self.read_models = MemoryReadModels()
        self.projections = CaughtUpProjections(self.log, self.read_models)
        self.blobs = MemoryBlobs()
        self.in_flight = InFlightInMemory()
        self.app = Application(
            self.log,
            self.read_models.registry,  # type: ignore[arg-type]  # the resolvers' queries: none without a database
            self.projections,
            projections=shown_to_commands(),
            read_models=self.read_models.protocols(),
            blobs=self.blobs,
            in_flight=self.in_flight,
        )

    async def __call__(self, command: Command, by: Caller = ADMIN, **options: Any) -> Accepted:
        return await self.app.execute(command, by, **options)

    def looked_up(self, who: Caller) -> Caller:
        """`who` as the server sees it on its next request: with the private scopes the identity read model
        holds (the key lookup reads them, services/http/api.py)."""
        return replace(who, private=frozenset(self.read_models.identity.private))

    def appended(self) -> list[Envelope]:
        """Every event on the log, in the order it was appended."""
        return [decode(r.value) for r in self.log.events()]

    def appended_types(self) -> list[str]:
        return [e.type for e in self.appended()]

    def stored_file(self, content: bytes, path: str = "model.pt") -> ManifestEntry:
        """A file uploaded to the blob store, as a manifest lists it."""
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        self.blobs.stored[digest] = len(content)
        return ManifestEntry(path=path, size=len(content), digest=digest)


def version_id(accepted: Accepted) -> UUID:
    return accepted.subject_id

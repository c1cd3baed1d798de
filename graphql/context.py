"""What every resolver gets in `info.context`: the caller, the command path, the reads, per-request loaders."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiodataloader import DataLoader

from modelreg.events.names import count_in
from modelreg.graphql.answer_budget import AnswerBudget
from modelreg.projections.audit_queries import AuditQueries
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.projections.launch_queries import LaunchQueries
from modelreg.projections.lineage_queries import LineageQueries
from modelreg.projections.readable import EVERYTHING, Readable, Visibility
from modelreg.projections.registry_queries import RegistryQueries
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.commands.access import Caller
from modelreg.services.commands.application import Application
from modelreg.services.http.key_uses import KeyUses


class _RequestLoader(DataLoader):
    """A loader of one request, which refers to its request's context weakly. The context holds its loaders, so a
    strong reference back would make each request's loaders, cached futures and rows a cycle that only the
    garbage collector frees: a pause of about 9 ms every 50 requests in `bench/registry.py`, falling on
    whichever request was being served."""

    def __init__(self, context: RequestContext) -> None:
        super().__init__()
        self._context = weakref.ref(context)

    async def batch_load_fn(self, keys: list[Any]) -> list[Any]:
        context = self._context()
        if context is None:  # a batch dispatched after its request was dropped (cancelled): nobody awaits it
            return [None] * len(keys)
        return await self.load_batch(context, keys)

    async def load_batch(self, context: RequestContext, keys: list[Any]) -> list[Any]:
        raise NotImplementedError


class ArtifactVersionLoader(_RequestLoader):
    """Batches artifact-version lookups of one request into one query (no N+1 on version tables); a version
    the caller may not read is not found."""

    async def load_batch(self, context: RequestContext, ids: list[UUID]) -> list[dict[str, Any] | None]:
        found = await context.reads.artifact_versions_by_ids(list(ids))
        shown = await context.visibility.readable_versions(found.values(), context.readable)
        readable = {row["id"]: row for row in shown}
        return [readable.get(i) for i in ids]


# Versions' files and metadata, runs' configs, summaries and environments, audit records' details, Launch jobs'
# sources, configs and overrides, automations' actions: each as big as an event (8 MiB). Lists and lookups by id
# read rows without them (projections/registry_queries.py, audit_queries.py, launch_queries.py), and these loaders
# read them when a field asks: this many rows at a time, one read after another, each counted against the request's
# answer budget before the next is read, so a page of 500 versions of 8 MiB manifests is refused after its first
# reads.
CONTENTS_READ_AT_ONCE = 8


async def _contents_in_steps(
    context: RequestContext, keys: list[Any], read: Callable[[list[Any]], Awaitable[dict[Any, dict[str, Any]]]]
) -> list[dict[str, Any] | None]:
    found: dict[Any, dict[str, Any]] = {}
    for start in range(0, len(keys), CONTENTS_READ_AT_ONCE):
        async with context.contents_reads:
            context.answer_budget.may_read_contents()
            step = await read(keys[start : start + CONTENTS_READ_AT_ONCE])
            context.answer_budget.contents_read += sum(row["read_bytes"] for row in step.values())
        found.update(step)
    return [found.get(key) for key in keys]


class VersionContentsLoader(_RequestLoader):
    """The files (`manifest`) and metadata of versions read without them, when a field asks."""

    async def load_batch(self, context: RequestContext, ids: list[UUID]) -> list[dict[str, Any] | None]:
        return await _contents_in_steps(context, ids, context.reads.artifact_version_contents)


class RunContentsLoader(_RequestLoader):
    """The config, summary and environment of runs read without them, when a field asks."""

    async def load_batch(
        self, context: RequestContext, keys: list[tuple[str, str, str]]
    ) -> list[dict[str, Any] | None]:
        return await _contents_in_steps(context, keys, context.reads.run_contents)


class AuditDetailsLoader(_RequestLoader):
    """The details (payloads) of audit records read without them, when a field asks."""

    async def load_batch(self, context: RequestContext, event_ids: list[UUID]) -> list[dict[str, Any] | None]:
        return await _contents_in_steps(context, event_ids, context.audit.details_of)


class JobContentsLoader(_RequestLoader):
    """The source, config and overrides of Launch jobs read without them, when a field asks."""

    async def load_batch(self, context: RequestContext, ids: list[UUID]) -> list[dict[str, Any] | None]:
        return await _contents_in_steps(context, ids, context.launch.job_contents)


class AutomationActionLoader(_RequestLoader):
    """The actions of automations read without them, when a field asks."""

    async def load_batch(self, context: RequestContext, ids: list[UUID]) -> list[dict[str, Any] | None]:
        return await _contents_in_steps(context, ids, context.launch.automation_actions)


class KeyHoldersLoader(_RequestLoader):
    """Batches, per request, whether each principal (`kind:id`, an automation's creator) holds a live key."""

    async def load_batch(self, context: RequestContext, principals: list[str]) -> list[bool]:
        keys = [(kind, ident) for kind, _, ident in (p.partition(":") for p in principals)]
        holding = await context.identity.holding_live_keys(keys)
        return [key in holding for key in keys]


class AutomationCreatorLoader(_RequestLoader):
    """Who created each automation whose audit records a page shows: they alone read its webhook url whole."""

    async def load_batch(self, context: RequestContext, ids: list[UUID]) -> list[str | None]:
        found = await context.launch.automation_creators(list(ids))
        return [found.get(i) for i in ids]


class NewestVersionLoader(_RequestLoader):
    """Batches, per request, which version of each collection is the newest (the one `latest` names)."""

    async def load_batch(self, context: RequestContext, keys: list[tuple[str, str, str]]) -> list[int | None]:
        found = await context.reads.newest_version_indexes(list(keys))
        return [found.get(k) for k in keys]


class RunLoader(_RequestLoader):
    """Batches run lookups by (entity, project, run_id); a run of an entity the caller may not read is not found."""

    async def load_batch(
        self, context: RequestContext, keys: list[tuple[str, str, str]]
    ) -> list[dict[str, Any] | None]:
        readable = context.readable
        found = await context.reads.runs_by_keys([k for k in keys if readable.entity(k[0])])
        return [found.get(k) for k in keys]


class JobLoader(_RequestLoader):
    """Batches Launch job lookups (the job that launched each run of a page) into one query; a job in an entity
    the caller may not read is not found."""

    async def load_batch(self, context: RequestContext, ids: list[UUID]) -> list[dict[str, Any] | None]:
        found = await context.launch.jobs_by_ids(list(ids))
        readable = context.readable
        return [job if (job := found.get(i)) and readable.entity(job["entity"]) else None for i in ids]


@dataclass
class RequestContext:
    app: Application
    reads: RegistryQueries
    caller: Caller | None  # None: no API key; the view refuses to execute for such requests
    webhook_secrets: WebhookSecrets = field(default_factory=lambda: WebhookSecrets(None), kw_only=True)
    key_uses: KeyUses | None = field(default=None, kw_only=True)  # this process's uses of keys, not written yet
    artifact_versions: ArtifactVersionLoader = field(init=False)
    version_contents: VersionContentsLoader = field(init=False)
    run_contents: RunContentsLoader = field(init=False)
    audit_details: AuditDetailsLoader = field(init=False)
    job_contents: JobContentsLoader = field(init=False)
    automation_actions: AutomationActionLoader = field(init=False)
    key_holders: KeyHoldersLoader = field(init=False)
    automation_creators: AutomationCreatorLoader = field(init=False)
    newest_versions: NewestVersionLoader = field(init=False)
    runs: RunLoader = field(init=False)
    lineage: LineageQueries = field(init=False)
    launch: LaunchQueries = field(init=False)
    identity: IdentityQueries = field(init=False)
    audit: AuditQueries = field(init=False)
    jobs: JobLoader = field(init=False)
    visibility: Visibility = field(init=False)
    _readable: tuple[Caller | None, Readable] | None = field(init=False, default=None)
    metric_points_read: int = field(init=False, default=0)  # graphql/metrics.py's budget of one request
    # Its history and scanHistory fields read one at a time: side by side, each would read before the budget
    # refused any (graphql/metrics.py).
    metric_reads: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    answer_budget: AnswerBudget = field(init=False, default_factory=AnswerBudget)  # graphql/answer_budget.py
    # Batches of stored values (versions' contents, jobs' configs, ...: dispatched side by side) read one after
    # another: each counts what it read before the next may start.
    contents_reads: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.visibility = Visibility(self.reads.pool)
        self.artifact_versions = ArtifactVersionLoader(self)
        self.version_contents = VersionContentsLoader(self)
        self.run_contents = RunContentsLoader(self)
        self.audit_details = AuditDetailsLoader(self)
        self.job_contents = JobContentsLoader(self)
        self.automation_actions = AutomationActionLoader(self)
        self.key_holders = KeyHoldersLoader(self)
        self.automation_creators = AutomationCreatorLoader(self)
        self.newest_versions = NewestVersionLoader(self)
        self.runs = RunLoader(self)
        self.lineage = LineageQueries(self.reads.pool)
        self.launch = LaunchQueries(self.reads.pool)
        self.identity = IdentityQueries(self.reads.pool)
        self.audit = AuditQueries(self.reads.pool)
        self.jobs = JobLoader(self)

    @property
    def readable(self) -> Readable:
        """What the caller may read (every read path filters by it). Follows the caller, which a websocket
        sets after the context is made."""
        if self._readable is None or self._readable[0] is not self.caller:
            self._readable = (self.caller, self.caller.readable() if self.caller else EVERYTHING)
        return self._readable[1]

    async def version_by_ref(self, entity: str, project: str, name: str, selector: str) -> dict[str, Any] | None:
        """The version a ref names (`v3`, `latest`, an alias), if the caller may read it. In an entity hidden from
        the caller (its version read through a registered model) only a number names one: `latest`, or an alias
        that a newer version may take, answered as the published version until the team logged another, then as
        nothing; and whether the collection has newer versions is the entity's to tell (ArtifactVersion.latest)."""
        if not self.readable.entity(entity) and not (selector[:1] == "v" and count_in(selector[1:]) is not None):
            return None
        return await self.readable_version(await self.reads.artifact_version_by_ref(entity, project, name, selector))

    async def readable_version(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """`row` (an artifact version) if the caller may read it, else None: as if there were no such version."""
        if row is None:
            return None
        shown = await self.visibility.readable_versions([row], self.readable)
        return row if shown else None

"""What every resolver gets in `info.context`: the caller, the command path, the reads, per-request loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiodataloader import DataLoader

from modelreg.projections.audit_queries import AuditQueries
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.projections.launch_queries import LaunchQueries
from modelreg.projections.lineage_queries import LineageQueries
from modelreg.projections.registry_queries import RegistryQueries
from modelreg.services.automations.webhook_signing import WebhookSecrets
from modelreg.services.commands.access import Caller
from modelreg.services.commands.application import Application


class ArtifactVersionLoader(DataLoader):
    """Batches artifact-version lookups of one request into one query (no N+1 on version tables)."""

    def __init__(self, reads: RegistryQueries) -> None:
        super().__init__()
        self._reads = reads

    async def batch_load_fn(self, ids: list[UUID]) -> list[dict[str, Any] | None]:
        found = await self._reads.artifact_versions_by_ids(list(ids))
        return [found.get(i) for i in ids]


class RunLoader(DataLoader):
    """Batches run lookups by (entity, project, run_id)."""

    def __init__(self, reads: RegistryQueries) -> None:
        super().__init__()
        self._reads = reads

    async def batch_load_fn(self, keys: list[tuple[str, str, str]]) -> list[dict[str, Any] | None]:
        found = await self._reads.runs_by_keys(list(keys))
        return [found.get(k) for k in keys]


class JobLoader(DataLoader):
    """Batches Launch job lookups (the job that launched each run of a page) into one query."""

    def __init__(self, launch: LaunchQueries) -> None:
        super().__init__()
        self._launch = launch

    async def batch_load_fn(self, ids: list[UUID]) -> list[dict[str, Any] | None]:
        found = await self._launch.jobs_by_ids(list(ids))
        return [found.get(i) for i in ids]


@dataclass
class RequestContext:
    app: Application
    reads: RegistryQueries
    caller: Caller | None  # None: no API key; the view refuses to execute for such requests
    webhook_secrets: WebhookSecrets = field(default_factory=lambda: WebhookSecrets(None), kw_only=True)
    artifact_versions: ArtifactVersionLoader = field(init=False)
    runs: RunLoader = field(init=False)
    lineage: LineageQueries = field(init=False)
    launch: LaunchQueries = field(init=False)
    identity: IdentityQueries = field(init=False)
    audit: AuditQueries = field(init=False)
    jobs: JobLoader = field(init=False)

    def __post_init__(self) -> None:
        self.artifact_versions = ArtifactVersionLoader(self.reads)
        self.runs = RunLoader(self.reads)
        self.lineage = LineageQueries(self.reads.pool)
        self.launch = LaunchQueries(self.reads.pool)
        self.identity = IdentityQueries(self.reads.pool)
        self.audit = AuditQueries(self.reads.pool)
        self.jobs = JobLoader(self.launch)

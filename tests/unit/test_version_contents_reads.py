"""A list of artifact versions reads each version's files and metadata (each as big as an event, 8 MiB) only when
a field asks for them, a few versions at a time, and stops reading once the request has read its share: a page of
500 versions read whole took gigabytes whatever was asked. Likewise a list of runs and their configs, summaries and
environments, and a list of audit records and their details. The real schema, executed on in-memory reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from graphql import graphql
from modelreg.graphql.answer_budget import MAX_CONTENTS_READ
from modelreg.graphql.context import CONTENTS_READ_AT_ONCE, RequestContext
from modelreg.graphql.schema import RESOLVER_MIDDLEWARE, build_schema
from modelreg.projections.search import SearchSlots

PAGE = 100
VERSION_BYTES = 4 * 1024**2  # the JSON of each version's files and metadata
SCHEMA = build_schema().graphql_schema


def page(fields: str) -> str:
    return f"""{{ artifactVersions(entity: "acme", project: "nature", name: "weights", first: {PAGE}) {{
        items {{ {fields} }} }} }}"""


class RegistryReads:
    """The reads a page of versions uses, in memory: rows listed without their contents, contents counted."""

    pool = None

    def __init__(self) -> None:
        self.rows = [
            {
                "id": uuid4(),
                "entity": "acme",
                "project": "nature",
                "name": "weights",
                "artifact_type": "model",
                "version_index": n,
                "digest": "sha256:" + "ab" * 32,
                "description": None,
                "aliases": [],
                "tags": [],
                "logged_by_run": None,
                "created_at": None,
                "created_by": "user:alice",
                "deleted_at": None,
            }
            for n in range(PAGE)
        ]
        self.contents_asked: list[list[UUID]] = []

        self.runs = [
            {
                "entity": "acme",
                "project": "nature",
                "run_id": f"run-{n}",
                "name": None,
                "job_type": "train",
                "state": "finished",
                "started_at": datetime(2026, 12, 1, tzinfo=UTC),
                "started_by": "user:alice",
                "launch_job_id": None,
            }
            for n in range(PAGE)
        ]
        self.run_contents_asked: list[list[tuple[str, str, str]]] = []
        self.run_searches = SearchSlots(per_caller=2)

    async def runs_page(self, *args: Any, limit: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self.runs[:limit]]

    async def run_contents(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict[str, Any]]:
        self.run_contents_asked.append(list(keys))
        contents = {"config": {"lr": 0.1}, "summary": {"loss": 0.5}, "environment": {}}
        return {key: {**contents, "read_bytes": VERSION_BYTES} for key in keys}

    async def artifact_versions_page(self, *args: Any, limit: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self.rows[:limit]]

    async def artifact_version_contents(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        self.contents_asked.append(list(ids))
        files = [{"path": "model.pt", "size": 3, "digest": "sha256:" + "cd" * 32}]
        return {i: {"manifest": files, "metadata": {"lr": 0.1}, "read_bytes": VERSION_BYTES} for i in ids}


class AuditReads:
    """The audit reads a page of records uses, in memory: records listed without their details, details counted."""

    def __init__(self) -> None:
        self.records = [
            {
                "event_id": uuid4(),
                "type": "run.config_updated",
                "stream": "run:acme/nature/r",
                "occurred_at": datetime(2026, 12, 1, tzinfo=UTC),
                "actor_kind": "user",
                "actor_id": "alice",
                "correlation_id": uuid4(),
                "causation_id": None,
                "recorded_offline_at": None,
            }
            for _ in range(PAGE)
        ]
        self.details_asked: list[list[UUID]] = []

    async def audit_page(self, *, limit: int, **filters: Any) -> list[dict[str, Any]]:
        return [dict(record) for record in self.records[:limit]]

    async def details_of(self, event_ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        self.details_asked.append(list(event_ids))
        return {i: {"payload": {"config": {"lr": 0.1}}, "read_bytes": VERSION_BYTES} for i in event_ids}


async def run(reads: RegistryReads, document: str, audit: AuditReads | None = None) -> Any:
    context = RequestContext(app=None, reads=reads, caller=None)  # type: ignore[arg-type]
    if audit is not None:
        context.audit = audit  # type: ignore[assignment]
    return await graphql(SCHEMA, document, context_value=context, middleware=RESOLVER_MIDDLEWARE)


async def test_a_page_of_versions_asked_for_their_numbers_reads_none_of_their_files() -> None:
    reads = RegistryReads()
    answer = await run(reads, page("version digest aliases"))
    assert not answer.errors, answer.errors
    assert len(answer.data["artifactVersions"]["items"]) == PAGE
    assert reads.contents_asked == []


async def test_a_page_of_versions_asked_for_their_files_reads_them_a_few_versions_at_a_time() -> None:
    reads = RegistryReads()
    answer = await run(reads, page("version size").replace(f"first: {PAGE}", "first: 20"))
    assert not answer.errors, answer.errors
    assert [item["size"] for item in answer.data["artifactVersions"]["items"]] == [3] * 20
    assert sorted(len(asked) for asked in reads.contents_asked) == [4, 8, 8]


async def test_a_page_whose_files_are_more_than_a_request_may_read_stops_reading_and_says_what_to_ask() -> None:
    reads = RegistryReads()
    answer = await run(reads, page("version files { path } metadata"))
    read = sum(len(asked) for asked in reads.contents_asked) * VERSION_BYTES
    assert read <= MAX_CONTENTS_READ + CONTENTS_READ_AT_ONCE * VERSION_BYTES, read
    assert answer.errors, "a page of 400 MiB of files was read and answered"
    assert "ask for those fields of fewer of them" in str(answer.errors[0])
    assert answer.errors[0].extensions["code"] == "INVALID_INPUT"


async def test_a_page_within_the_budget_lists_every_version_s_files_and_metadata() -> None:
    reads = RegistryReads()
    few = page("version files { path } metadata").replace(f"first: {PAGE}", "first: 20")
    answer = await run(reads, few)
    assert not answer.errors, answer.errors
    items = answer.data["artifactVersions"]["items"]
    assert [item["files"] for item in items] == [[{"path": "model.pt"}]] * 20
    assert {str(item["metadata"]) for item in items} == {"{'lr': 0.1}"}


def runs(fields: str, first: int = PAGE) -> str:
    return f'{{ runs(entity: "acme", project: "nature", first: {first}) {{ items {{ {fields} }} }} }}'


async def test_a_page_of_runs_asked_for_their_names_reads_none_of_their_configs() -> None:
    reads = RegistryReads()
    answer = await run(reads, runs("runId state launchedBy { id }"))
    assert not answer.errors, answer.errors
    assert len(answer.data["runs"]["items"]) == PAGE
    assert reads.run_contents_asked == []


async def test_a_page_of_runs_lists_their_configs_and_summaries_read_a_few_runs_at_a_time() -> None:
    reads = RegistryReads()
    answer = await run(reads, runs("runId config summary environment", first=20))
    assert not answer.errors, answer.errors
    items = answer.data["runs"]["items"]
    assert [(item["config"], item["summary"]) for item in items] == [({"lr": 0.1}, {"loss": 0.5})] * 20
    assert sorted(len(asked) for asked in reads.run_contents_asked) == [4, 8, 8]


async def test_a_page_of_runs_whose_configs_are_more_than_a_request_may_read_stops_reading() -> None:
    reads = RegistryReads()
    answer = await run(reads, runs("runId config"))
    read = sum(len(asked) for asked in reads.run_contents_asked) * VERSION_BYTES
    assert read <= MAX_CONTENTS_READ + CONTENTS_READ_AT_ONCE * VERSION_BYTES, read
    assert answer.errors, "a page of 400 MiB of configs was read and answered"
    assert "ask for those fields of fewer" in str(answer.errors[0])


def audit_log(fields: str, first: int = PAGE) -> str:
    return f"{{ auditLog(first: {first}) {{ items {{ {fields} }} }} }}"


async def test_a_page_of_audit_records_asked_who_did_what_reads_none_of_their_details() -> None:
    audit = AuditReads()
    answer = await run(RegistryReads(), audit_log("action actor occurredAt"), audit)
    assert not answer.errors, answer.errors
    assert len(answer.data["auditLog"]["items"]) == PAGE
    assert audit.details_asked == []


async def test_a_page_of_audit_records_with_their_details_stops_reading_past_the_budget() -> None:
    audit = AuditReads()
    few = await run(RegistryReads(), audit_log("action details", first=20), audit)
    assert not few.errors, few.errors
    assert {str(item["details"]) for item in few.data["auditLog"]["items"]} == {"{'config': {'lr': 0.1}}"}

    audit = AuditReads()
    many = await run(RegistryReads(), audit_log("action details"), audit)
    read = sum(len(asked) for asked in audit.details_asked) * VERSION_BYTES
    assert read <= MAX_CONTENTS_READ + CONTENTS_READ_AT_ONCE * VERSION_BYTES, read
    assert many.errors, "a page of 400 MiB of details was read and answered"

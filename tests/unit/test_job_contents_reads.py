"""A list of Launch jobs reads each job's source, config and overrides (each as big as an event, 8 MiB) only when a
field asks for them, a few jobs at a time, and stops reading once the request has read its share of the budget that
versions, runs and audit records share: a page of hundreds of jobs read whole took hundreds of MiB when only ids and
states were asked for. Likewise what an agent polls (waitingJobs), and a list of automations and their actions. The
real schema, executed on in-memory reads; tests/integration/test_launch_lists_read_no_configs.py shows the SQL side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from graphql import graphql
from modelreg.graphql.answer_budget import MAX_CONTENTS_READ
from modelreg.graphql.context import CONTENTS_READ_AT_ONCE, RequestContext
from modelreg.graphql.schema import RESOLVER_MIDDLEWARE, build_schema

PAGE = 100
JOB_BYTES = 4 * 1024**2  # the JSON of each job's source, config and overrides, or of an automation's action
SCHEMA = build_schema().graphql_schema
AT = datetime(2026, 12, 1, tzinfo=UTC)
SOURCE = {"kind": "git", "git_remote": "https://example.com/acme/nature.git", "entry_point": ["python", "train.py"]}


class LaunchReads:
    """The Launch reads a page of jobs or automations uses, in memory: rows listed without their big columns,
    those read on their own and counted."""

    def __init__(self) -> None:
        self.jobs_listed = [
            {
                "job_id": uuid4(),
                "queue": "gpu",
                "entity": "acme",
                "project": "nature",
                "priority": 0,
                "triggered_by": None,
                "state": "queued",
                "attempt": 0,
                "requeues": 0,
                "enqueued_at": AT,
                "enqueued_by": "user:alice",
            }
            for _ in range(PAGE)
        ]
        self.automations_listed = [
            {
                "automation_id": uuid4(),
                "name": f"evaluate-{n}",
                "description": None,
                "trigger": {"event": "alias_added", "alias_pattern": "candidate"},
                "cooldown_s": 0.0,
                "enabled": True,
                "created_at": AT,
                "created_by": "user:alice",
                "last_fired_at": None,
                "deleted_at": None,
            }
            for n in range(PAGE)
        ]
        self.job_contents_asked: list[list[UUID]] = []
        self.actions_asked: list[list[UUID]] = []

    async def jobs(self, *, limit: int, **filters: Any) -> list[dict[str, Any]]:
        return [dict(job) for job in self.jobs_listed[:limit]]

    async def next_waiting(self, queues: list[str], limit: int, **filters: Any) -> list[dict[str, Any]]:
        return [dict(job) for job in self.jobs_listed[:limit]]

    async def job_contents(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        self.job_contents_asked.append(list(ids))
        contents = {"source": SOURCE, "config": {"lr": 0.1}, "overrides": {"lr": 0.01}}
        return {i: {**contents, "read_bytes": JOB_BYTES} for i in ids}

    async def automations(self, *, limit: int | None, **filters: Any) -> list[dict[str, Any]]:
        return [dict(automation) for automation in self.automations_listed[:limit]]

    async def automation_actions(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        self.actions_asked.append(list(ids))
        action = {"kind": "webhook", "url": "https://example.com/hook", "payload": {"model": "${artifact_ref}"}}
        return {i: {"action": action, "read_bytes": JOB_BYTES} for i in ids}


async def run(launch: LaunchReads, document: str) -> Any:
    context = RequestContext(app=None, reads=RegistryReads(), caller=None)  # type: ignore[arg-type]
    context.launch = launch  # type: ignore[assignment]
    return await graphql(SCHEMA, document, context_value=context, middleware=RESOLVER_MIDDLEWARE)


def jobs(fields: str, first: int = PAGE) -> str:
    return f"{{ launchJobs(first: {first}) {{ items {{ {fields} }} }} }}"


def read(asked: list[list[UUID]]) -> int:
    return sum(len(step) for step in asked) * JOB_BYTES


async def test_a_page_of_jobs_asked_for_their_ids_and_states_reads_none_of_their_configs() -> None:
    launch = LaunchReads()
    answer = await run(launch, jobs("id state queue enqueuedBy triggeredBy"))
    assert not answer.errors, answer.errors
    assert len(answer.data["launchJobs"]["items"]) == PAGE
    assert {item["state"] for item in answer.data["launchJobs"]["items"]} == {"QUEUED"}
    assert launch.job_contents_asked == []


async def test_a_page_of_jobs_lists_their_sources_configs_and_overrides_read_a_few_jobs_at_a_time() -> None:
    launch = LaunchReads()
    answer = await run(launch, jobs("id source config overrides", first=20))
    assert not answer.errors, answer.errors
    items = answer.data["launchJobs"]["items"]
    assert [(item["source"], item["config"], item["overrides"]) for item in items] == [
        (SOURCE, {"lr": 0.1}, {"lr": 0.01})
    ] * 20
    assert sorted(len(asked) for asked in launch.job_contents_asked) == [4, 8, 8]


async def test_a_page_of_jobs_whose_configs_are_more_than_a_request_may_read_stops_reading_and_says_what_to_ask() -> (
    None
):
    launch = LaunchReads()
    answer = await run(launch, jobs("id config"))
    assert read(launch.job_contents_asked) <= MAX_CONTENTS_READ + CONTENTS_READ_AT_ONCE * JOB_BYTES
    assert answer.errors, "a page of 400 MiB of configs was read and answered"
    assert "Launch jobs (source, config, overrides)" in str(answer.errors[0])
    assert "ask for those fields of fewer of them" in str(answer.errors[0])
    assert answer.errors[0].extensions["code"] == "INVALID_INPUT"


class RegistryReads:
    """A collection's versions listed without their files and metadata, those counted when read (as
    tests/unit/test_version_contents_reads.py has them)."""

    pool = None

    async def artifact_versions_page(self, *args: Any, limit: int, **kwargs: Any) -> list[dict[str, Any]]:
        return [{"id": uuid4(), "entity": "acme", "version_index": n} for n in range(limit)]

    async def artifact_version_contents(self, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        return {i: {"manifest": [], "metadata": {"lr": 0.1}, "read_bytes": JOB_BYTES} for i in ids}


async def test_jobs_configs_count_against_the_budget_versions_files_count_against() -> None:
    versions = 'artifactVersions(entity: "acme", project: "nature", name: "weights", first: 24) { items { metadata } }'
    each_alone = [f"{{ {versions} }}", jobs("config", first=24)]  # 96 MiB each
    for document in each_alone:
        answer = await run(LaunchReads(), document)
        assert not answer.errors, answer.errors

    launch = LaunchReads()
    both = await run(launch, f"{{ {versions} launchJobs(first: 24) {{ items {{ config }} }} }}")
    assert both.errors, "192 MiB of versions' metadata and jobs' configs were read in one request"
    assert "ask for those fields of fewer of them" in str(both.errors[0])


async def test_aliases_of_a_page_of_jobs_read_each_job_s_config_once() -> None:
    launch = LaunchReads()
    aliased = "{ a: launchJobs(first: 20) { items { config } } b: launchJobs(first: 20) { items { source } } }"
    answer = await run(launch, aliased)
    assert not answer.errors, answer.errors
    assert sum(len(asked) for asked in launch.job_contents_asked) == 20


def waiting(fields: str, first: int = 20) -> str:
    return f'{{ waitingJobs(queues: ["gpu"], first: {first}) {{ items {{ {fields} }} }} }}'


async def test_what_an_agent_polls_reads_jobs_configs_only_when_it_asks_for_them() -> None:
    launch = LaunchReads()
    answer = await run(launch, waiting("id priority", first=PAGE))
    assert not answer.errors, answer.errors
    assert launch.job_contents_asked == []

    # services/agent/agent.py's page: 20 jobs it may run, each with what it needs to run them.
    answer = await run(launch, waiting("id queue entity project state source config overrides attempt timeLimitS"))
    assert not answer.errors, answer.errors
    assert {str(item["overrides"]) for item in answer.data["waitingJobs"]["items"]} == {"{'lr': 0.01}"}
    assert sorted(len(asked) for asked in launch.job_contents_asked) == [4, 8, 8]


def automations(fields: str, first: int = PAGE) -> str:
    return f"{{ automations(first: {first}) {{ items {{ {fields} }} }} }}"


async def test_a_page_of_automations_asked_for_their_names_reads_none_of_their_actions() -> None:
    launch = LaunchReads()
    answer = await run(launch, automations("id name enabled trigger lastFiredAt"))
    assert not answer.errors, answer.errors
    assert len(answer.data["automations"]["items"]) == PAGE
    assert answer.data["automations"]["items"][0]["trigger"] == {"event": "alias_added", "alias_pattern": "candidate"}
    assert launch.actions_asked == []


async def test_a_page_of_automations_with_their_actions_stops_reading_past_the_budget() -> None:
    launch = LaunchReads()
    few = await run(launch, automations("name action", first=20))
    assert not few.errors, few.errors
    assert {item["action"]["kind"] for item in few.data["automations"]["items"]} == {"webhook"}
    assert sorted(len(asked) for asked in launch.actions_asked) == [4, 8, 8]

    launch = LaunchReads()
    many = await run(launch, automations("name action"))
    assert read(launch.actions_asked) <= MAX_CONTENTS_READ + CONTENTS_READ_AT_ONCE * JOB_BYTES
    assert many.errors, "a page of 400 MiB of actions was read and answered"
    assert "automations (action)" in str(many.errors[0])

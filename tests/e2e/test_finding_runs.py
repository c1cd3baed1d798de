"""Finding runs: the projects that have runs, and a project's runs newest first, a page at a time, searched and
filtered; from GraphQL and from `modelreg.Api().runs`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.stack import Stack

from modelreg.events.envelope import Actor, Envelope
from modelreg.events.log import EventLog
from modelreg.events.runs import RunFinished, RunStarted, run_stream

RUNS = """query($e: String!, $p: String!, $search: String, $state: RunState, $jobType: String, $first: Int,
  $after: String) {
  runs(entity: $e, project: $p, search: $search, state: $state, jobType: $jobType, first: $first, after: $after) {
    items { runId name jobType state } endCursor hasNextPage totalCount
  }
}"""
PROJECTS = "query($e: String) { projects(entity: $e) { items { entity project runCount lastActivityAt } } }"

BASE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
COUNT = 23


def started_at(n: int) -> datetime:
    """A minute apart, newest last; run-10 and run-11 start at the same instant (their ids break the tie)."""
    return BASE + timedelta(minutes=n - (n == 11))


def state_of(n: int) -> str:
    return {0: "failed", 1: "finished"}.get(n % 5, "running")


def job_type_of(n: int) -> str:
    return "train" if n % 2 == 0 else "evaluate"


async def ok(stack: Stack, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = await stack.graphql(query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


async def seed(stack: Stack, event_log: EventLog) -> None:
    """23 runs in acme/nature (every third named "Baseline ResNet"), one in acme/vision, one in beta/nature.
    Appended as a history already on the log, with the times the server received them (a client's command
    can no longer set those: only its offline claim, kept beside them)."""
    alice = Actor(kind="user", id="alice")
    history: list[Envelope] = []

    def received(payload: RunStarted | RunFinished, at: datetime) -> None:
        stream = run_stream(payload.entity, payload.project, payload.run_id)
        history.append(Envelope.new(payload, stream=stream, actor=alice, occurred_at=at))

    for n in range(COUNT):
        run = {"entity": "acme", "project": "nature", "run_id": f"run-{n:02d}"}
        name = f"Baseline ResNet {n}" if n % 3 == 0 else None
        received(RunStarted(**run, name=name, job_type=job_type_of(n)), started_at(n))
        if state_of(n) != "running":
            finished = RunFinished(**run, state=state_of(n), summary={"loss": 0.1 * n})  # type: ignore[arg-type]
            received(finished, started_at(n) + timedelta(seconds=30))
    received(RunStarted(entity="acme", project="vision", run_id="v-1"), BASE + timedelta(hours=1))
    received(RunStarted(entity="beta", project="nature", run_id="b-1"), BASE - timedelta(days=1))
    await event_log.append(history)
    await stack.projected()


async def every_page(stack: Stack, first: int, **filters: Any) -> tuple[list[str], int]:
    """The run ids of every page in order, and how many pages it took; every page counts them all."""
    seen: list[str] = []
    totals: set[int] = set()
    after, pages = None, 0
    while True:
        page = (await ok(stack, RUNS, {"e": "acme", "p": "nature", "first": first, "after": after, **filters}))["runs"]
        pages += 1
        assert len(page["items"]) == first or not page["hasNextPage"]
        seen += [run["runId"] for run in page["items"]]
        totals.add(page["totalCount"])
        if not page["hasNextPage"]:
            assert totals == {len(seen)}
            return seen, pages
        after = page["endCursor"]


def newest_first(ns: list[int] | range) -> list[str]:
    return [f"run-{n:02d}" for n in sorted(ns, key=lambda n: (started_at(n), n), reverse=True)]


async def test_paging_through_a_project_covers_every_run_once_newest_first(stack: Stack, event_log: EventLog) -> None:
    await seed(stack, event_log)

    everything = newest_first(range(COUNT))
    assert everything[:3] == ["run-22", "run-21", "run-20"] and everything.index("run-11") + 1 == everything.index(
        "run-10"
    )
    # Pages of 4 put the tie between run-11 and run-10 across a page boundary: neither is lost or repeated.
    assert await every_page(stack, 4) == (everything, 6)
    assert await every_page(stack, 50) == (everything, 1)
    first = (await ok(stack, RUNS, {"e": "acme", "p": "nature", "first": 2}))["runs"]
    assert first["items"] == [
        {"runId": "run-22", "name": None, "jobType": "train", "state": "RUNNING"},
        {"runId": "run-21", "name": "Baseline ResNet 21", "jobType": "evaluate", "state": "FINISHED"},
    ]
    assert first["totalCount"] == COUNT

    empty = (await ok(stack, RUNS, {"e": "acme", "p": "no-such-project"}))["runs"]
    assert empty == {"items": [], "endCursor": None, "hasNextPage": False, "totalCount": 0}
    other_entity = (await ok(stack, RUNS, {"e": "beta", "p": "nature"}))["runs"]
    assert [r["runId"] for r in other_entity["items"]] == ["b-1"]


async def test_runs_are_found_by_search_state_and_job_type(stack: Stack, event_log: EventLog) -> None:
    await seed(stack, event_log)

    async def found(**filters: Any) -> list[str]:
        ids, _ = await every_page(stack, 3, **filters)
        return ids

    named = [n for n in range(COUNT) if n % 3 == 0]
    assert await found(search="resnet") == newest_first(named)  # the name, in any case
    assert await found(search="  BASELINE resnet 1") == newest_first(
        [12, 15, 18]
    )  # trimmed; "…resnet 1" starts 12, 15, 18
    assert await found(search="RUN-2") == newest_first([20, 21, 22])  # the run id
    assert await found(search="evalu") == newest_first([n for n in range(COUNT) if n % 2])  # the job type
    assert await found(search="run_0") == []  # a literal: _ and % are no wildcards
    assert await found(search="") == newest_first(range(COUNT))

    assert await found(state="FAILED") == newest_first([n for n in range(COUNT) if n % 5 == 0])
    assert await found(jobType="evaluate", state="RUNNING") == newest_first(
        [n for n in range(COUNT) if n % 2 and state_of(n) == "running"]
    )
    assert await found(search="resnet", state="FINISHED", jobType="train") == newest_first(
        [n for n in named if state_of(n) == "finished" and n % 2 == 0]
    )
    assert await found(jobType="nope") == []

    project = (await ok(stack, '{ project(entity: "acme", project: "nature") { runCount jobTypes } }', {}))["project"]
    assert project == {"runCount": COUNT, "jobTypes": ["evaluate", "train"]}
    assert (await ok(stack, '{ project(entity: "acme", project: "nope") { runCount } }', {}))["project"] is None


async def test_projects_list_their_run_counts_most_recently_active_first(stack: Stack, event_log: EventLog) -> None:
    await seed(stack, event_log)

    projects = (await ok(stack, PROJECTS, {}))["projects"]["items"]
    assert [(p["entity"], p["project"], p["runCount"]) for p in projects] == [
        ("acme", "vision", 1),
        ("acme", "nature", COUNT),
        ("beta", "nature", 1),
    ]
    # The last thing that happened in acme/nature: run-22 started after run-21 finished.
    assert datetime.fromisoformat(projects[1]["lastActivityAt"]) == started_at(22)
    paged = "query($after: String) { projects(first: 1, after: $after) { items { project } endCursor hasNextPage } }"
    pages, after = [], None
    while after is not None or not pages:  # pages of one: every project once, in the same order
        page = (await ok(stack, paged, {"after": after}))["projects"]
        pages.append([p["project"] for p in page["items"]])
        after = page["endCursor"] if page["hasNextPage"] else None
    assert pages == [["vision"], ["nature"], ["nature"]]
    assert [p["project"] for p in (await ok(stack, PROJECTS, {"e": "beta"}))["projects"]["items"]] == ["nature"]
    assert (await ok(stack, PROJECTS, {"e": "nobody"}))["projects"]["items"] == []


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"first": 0}, "first must be between 1 and 500"),
        ({"first": 501}, "first must be between 1 and 500"),
        ({"state": "DONE"}, "Value 'DONE' does not exist in 'RunState' enum"),
        ({"after": "bm90LWEtY3Vyc29y"}, "is not one this API returned"),
    ],
)
async def test_a_bad_page_size_state_or_cursor_is_invalid_input(
    stack: Stack, variables: dict[str, Any], said: str
) -> None:
    answer = await stack.graphql(RUNS, {"e": "acme", "p": "nature", **variables})
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert said in error["message"]


async def test_a_script_reads_a_projects_runs_with_the_client_a_page_at_a_time(
    stack: Stack, event_log: EventLog
) -> None:
    import modelreg
    from modelreg.errors import InvalidInput

    await seed(stack, event_log)
    assert stack.client is not None
    api = modelreg.Api(url=str(stack.client.make_url("/")))

    def listed(**filters: Any) -> list[str]:
        return [run.id for run in api.runs("acme/nature", per_page=4, **filters)]

    assert await asyncio.to_thread(listed) == newest_first(range(COUNT))
    failed = await asyncio.to_thread(lambda: list(api.runs("acme/nature", state="failed", search="resnet")))
    assert [("/".join(r.path), r.state, r.summary) for r in failed] == [
        (f"acme/nature/run-{n:02d}", "failed", {"loss": pytest.approx(0.1 * n)}) for n in (15, 0)
    ]
    with pytest.raises(InvalidInput, match="entity/project"):
        api.runs("acme/nature/run-00")  # a run's path, not a project's (a bare "nature" is the caller's own project)
    with pytest.raises(InvalidInput, match="first must be between"):
        await asyncio.to_thread(lambda: list(api.runs("acme/nature", per_page=0)))

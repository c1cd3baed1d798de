"""Finding runs: the projects that have runs, and a project's runs newest first, a page at a time, searched and
filtered; from GraphQL and from `modelreg.Api().runs`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
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
    # The state as W&B writes it, or as the GraphQL enum spells it: the same runs (RUNNING found none).
    running = newest_first([n for n in range(COUNT) if state_of(n) == "running"])
    assert await asyncio.to_thread(listed, filters={"state": "RUNNING"}) == running
    assert await asyncio.to_thread(listed, filters={"state": "running"}) == running
    with pytest.raises(InvalidInput, match="entity/project"):
        api.runs("acme/nature/run-00")  # a run's path, not a project's (a bare "nature" is the caller's own project)
    with pytest.raises(InvalidInput, match="first must be between"):
        await asyncio.to_thread(lambda: list(api.runs("acme/nature", per_page=0)))


# W&B's MongoDB-style filters (`Api().runs(path, filters=...)`) where MongoDB's answer is easy to get wrong in SQL:
# a negation of a test on a key some runs lack, and equality on arrays and objects.


async def runs_with_configs(stack: Stack, event_log: EventLog, project: str, runs: list[dict[str, Any]]) -> Any:
    """Runs r0, r1... of acme/<project> started a minute apart with these configs (a "group" and a "summary"
    taken out of each); and a client to find them with."""
    import modelreg

    alice = Actor(kind="user", id="alice")
    history: list[Envelope] = []
    for n, config in enumerate(runs):
        config = dict(config)
        group, summary = config.pop("group", None), config.pop("summary", None)
        run = {"entity": "acme", "project": project, "run_id": f"r{n}"}
        at = BASE + timedelta(minutes=n)
        history.append(
            Envelope.new(
                RunStarted(**run, config=config, group=group),
                stream=run_stream("acme", project, f"r{n}"),
                actor=alice,
                occurred_at=at,
            )
        )
        if summary is not None:
            finished = RunFinished(**run, state="finished", summary=summary)
            stream = run_stream("acme", project, f"r{n}")
            history.append(Envelope.new(finished, stream=stream, actor=alice, occurred_at=at + timedelta(seconds=1)))
    await event_log.append(history)
    await stack.projected()
    assert stack.client is not None
    return modelreg.Api(url=str(stack.client.make_url("/")))


async def test_a_negated_filter_finds_the_runs_that_lack_the_key_or_hold_another_kind_of_value(
    stack: Stack, event_log: EventLog
) -> None:
    api = await runs_with_configs(
        stack,
        event_log,
        "tuning",
        [{"lr": 0.1, "bs": "big", "group": "g"}, {"lr": 0.01}, {"lr": "auto", "group": "g"}, {}],
    )

    def found(filters: dict[str, Any]) -> list[str]:
        return sorted(run.id for run in api.runs("acme/tuning", filters=filters))

    async def finds(filters: dict[str, Any]) -> list[str]:
        return await asyncio.to_thread(found, filters)

    # A run without a batch size, or without a group, is one that matches none of the $nor's filters.
    assert await finds({"$nor": [{"config.bs": {"$regex": "b"}}]}) == ["r1", "r2", "r3"]
    assert await finds({"$nor": [{"group": {"$regex": "g"}}]}) == ["r1", "r3"]
    # "lr": "auto" is not greater than 0.05, and neither is a missing lr.
    assert await finds({"$not": {"config.lr": {"$gt": 0.05}}}) == ["r1", "r2", "r3"]
    assert await finds({"$not": {"$not": {"config.lr": {"$gt": 0.05}}}}) == ["r0"]
    assert await finds({"$not": {"$or": [{"config.lr": {"$lt": 0.05}}, {"group": "g"}]}}) == ["r3"]
    # MongoDB's own form: $not on the key, around operators on it.
    assert await finds({"config.lr": {"$not": {"$gt": 0.05}}}) == ["r1", "r2", "r3"]
    assert await finds({"config.lr": {"$not": {"$gt": 0.001, "$lt": 0.05}}}) == ["r0", "r2", "r3"]
    assert await finds({"group": {"$not": {"$regex": "^g"}}}) == ["r1", "r3"]
    assert await finds({"config.bs": {"$not": {"$exists": True}}}) == ["r1", "r2", "r3"]
    # $ne and $nin match a run without the key, as in MongoDB.
    assert await finds({"config.bs": {"$ne": "big"}}) == ["r1", "r2", "r3"]
    assert await finds({"config.lr": {"$nin": [0.1, 0.01]}}) == ["r2", "r3"]
    assert await finds({"group": {"$nin": ["g"]}}) == ["r1", "r3"]


async def test_equality_on_config_and_summary_is_mongodb_equality_not_containment(
    stack: Stack, event_log: EventLog
) -> None:
    api = await runs_with_configs(
        stack,
        event_log,
        "shapes",
        [
            {"lst": [1, 2, 3], "model": {"layers": 2, "width": 64}, "n": 1, "summary": {"scores": [0.9, 0.8]}},
            {"lst": [1], "model": {"layers": 2}, "n": 1.0, "summary": {"scores": 0.9}},
            {"lst": [[1], 5], "model": [{"layers": 2}, {"layers": 3}], "n": "1", "summary": {"scores": [[0.9]]}},
            {},
        ],
    )

    def found(filters: dict[str, Any]) -> list[str]:
        return sorted(run.id for run in api.runs("acme/shapes", filters=filters))

    async def finds(filters: dict[str, Any]) -> list[str]:
        return await asyncio.to_thread(found, filters)

    # An array equals only an equal array (in order), or an array holding it as an element.
    assert await finds({"config.lst": [1]}) == ["r1", "r2"]
    assert await finds({"config.lst": [1, 2, 3]}) == ["r0"]
    assert await finds({"config.lst": [3, 2, 1]}) == []
    # A value matches an array that holds it.
    assert await finds({"config.lst": 2}) == ["r0"]
    assert await finds({"config.lst": 1}) == ["r0", "r1"]
    assert await finds({"config.lst.value": {"$eq": 5}}) == ["r2"]
    # An object equals only the same object, not one with more keys.
    assert await finds({"config.model": {"layers": 2}}) == ["r1", "r2"]
    assert await finds({"config.model": {"width": 64, "layers": 2}}) == ["r0"]
    # Numbers compare as numbers (1 == 1.0), never as the string "1".
    assert await finds({"config.n": 1}) == ["r0", "r1"]
    assert await finds({"config.n": "1"}) == ["r2"]
    assert await finds({"config.lst": {"$ne": [1]}}) == ["r0", "r3"]
    assert await finds({"config.lst": {"$ne": 2}}) == ["r1", "r2", "r3"]
    assert await finds({"config.lst": {"$in": [2, [1]]}}) == ["r0", "r1", "r2"]
    assert await finds({"config.lst": {"$nin": [2, 5]}}) == ["r1", "r3"]
    assert await finds({"summary_metrics.scores": 0.9}) == ["r0", "r1"]
    assert await finds({"summary_metrics.scores": [0.9]}) == ["r2"]
    assert await finds({"$nor": [{"config.model": {"layers": 3}}]}) == ["r0", "r1", "r3"]


async def test_equality_on_config_and_summary_is_still_answered_by_their_gin_indexes(stack: Stack) -> None:
    from modelreg.projections.run_query import RunQuery
    from modelreg.services.infra.database import _init_connection

    connection = await asyncpg.connect(stack.settings.database_url)
    try:
        await _init_connection(connection)
        await connection.execute("SET enable_seqscan = off")
        for filters, index in [
            ({"config.lr": 0.01}, "runs_by_config"),
            ({"config.lst": {"$in": [[1], 2]}}, "runs_by_config"),
            ({"summary_metrics.acc": 0.92}, "runs_by_summary"),
            ({"summary_metrics.val.acc": 0.92}, "runs_by_summary"),
        ]:
            query = RunQuery(first_parameter=1)
            condition = query.where(filters)
            explained = await connection.fetch(f"EXPLAIN SELECT run_id FROM runs WHERE {condition}", *query.args)
            plan = "\n".join(r[0] for r in explained)
            assert index in plan, plan
    finally:
        await connection.close()


# Ordered pages while runs start: W&B's orders page by the last run's sort value and id (projections/run_order.py).

ORDERED = """query($order: String, $first: Int, $after: String) {
  runs(entity: "acme", project: "ordered", order: $order, first: $first, after: $after) {
    items { runId } endCursor hasNextPage
  }
}"""
MISSING = object()
# lr in config and acc in summary of r0...r10: every kind of JSON value, a string too long to carry in a cursor, a
# JSON null, and three runs without the key. jsonb orders kinds: null, strings, numbers, booleans, arrays, objects;
# runs without the key come last either way, by run id (as text: r10 before r3).
VALUES: list[Any] = [0.1, "auto" + "!" * 5000, 10, MISSING, 2, True, None, [1], {"a": 1}, MISSING, MISSING]
GROUPS = {0: "g2", 1: "g1", 4: "g1"}
IN_ORDER = {
    "+config.lr": ["r6", "r1", "r0", "r4", "r2", "r5", "r7", "r8", "r10", "r3", "r9"],
    "-config.lr": ["r8", "r7", "r5", "r2", "r4", "r0", "r1", "r6", "r9", "r3", "r10"],
    "+summary_metrics.acc": ["r6", "r1", "r0", "r4", "r2", "r5", "r7", "r8", "r10", "r3", "r9"],
    "display_name": ["r0", "r1", "r10", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"],
    "-display_name": ["r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2", "r10", "r1", "r0"],
    "+group": ["r1", "r4", "r0", "r10", "r2", "r3", "r5", "r6", "r7", "r8", "r9"],
    "-heartbeat_at": [f"r{n}" for n in reversed(range(11))],
    "+created_at": [f"r{n}" for n in range(11)],
}
# A run started between pages that sorts before every run listed so far: OFFSET showed the last one again.
SORTS_FIRST = {"+": {"lr": None, "group": "a"}, "-": {"lr": {"y": 1, "z": 2}, "group": "a"}}


async def test_a_run_started_between_pages_of_an_order_repeats_no_run_and_passes_over_none(
    stack: Stack, event_log: EventLog
) -> None:
    runs = []
    for n, value in enumerate(VALUES):
        known = {} if value is MISSING else {"lr": value, "summary": {"acc": value}}
        runs.append({**known, **({"group": GROUPS[n]} if n in GROUPS else {})})
    await runs_with_configs(stack, event_log, "ordered", runs)
    started = 0

    async def start_one(order: str) -> None:
        nonlocal started
        first = SORTS_FIRST["-" if order.startswith("-") else "+"]
        run = {"entity": "acme", "project": "ordered", "runId": f"a{started:02d}"}
        answer = await stack.graphql(
            "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }",
            {"i": {**run, "config": {"lr": first["lr"]}, "group": first["group"]}},
        )
        finished = await stack.graphql(
            "mutation($i: FinishRunInput!) { finishRun(input: $i) { runId } }",
            {"i": {**run, "summary": {"acc": first["lr"]}}},
        )
        assert "errors" not in answer and "errors" not in finished, (answer, finished)
        started += 1

    for order, expected in IN_ORDER.items():
        seen, after, cursors = [], None, []
        while True:
            page = (await ok(stack, ORDERED, {"order": order, "first": 2, "after": after}))["runs"]
            seen += [run["runId"] for run in page["items"]]
            cursors.append(page["endCursor"])
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
            await start_one(order)
        assert len(seen) == len(set(seen)), (order, seen)
        assert [run for run in seen if run.startswith("r")] == expected, order
        assert all(len(cursor) < 1000 for cursor in cursors)  # the long value is read again from its run


async def test_a_cursor_of_another_order_or_one_made_up_is_refused_as_one_this_api_did_not_return(
    stack: Stack, event_log: EventLog
) -> None:
    await runs_with_configs(stack, event_log, "ordered", [{"lr": 0.1}, {"lr": 0.2}, {}])
    by_name = (await ok(stack, ORDERED, {"order": "display_name", "first": 1}))["runs"]["endCursor"]
    newest = (await ok(stack, ORDERED, {"first": 1}))["runs"]["endCursor"]
    for order, cursor, listed in [
        ("+config.lr", by_name, "runs(order: +config.lr)"),
        ("-display_name", by_name, "runs(order: -display_name)"),
        ("display_name", newest, "runs(order: +display_name)"),
        ("-created_at", by_name, "runs"),
    ]:
        answer = await stack.graphql(ORDERED, {"order": order, "after": cursor})
        (error,) = answer["errors"]
        assert error["extensions"]["code"] == "INVALID_INPUT", answer
        assert f"pass a page's endCursor, from {listed} asked with the same arguments" in error["message"]


PROJECTS_PAGE = """query($order: ProjectOrder, $after: String) {
  projects(entity: "pj", order: $order, first: 2, after: $after) { items { project } endCursor hasNextPage }
}"""


async def test_projects_by_name_are_each_listed_once_however_active_and_by_activity_an_active_one_moves_first(
    stack: Stack, event_log: EventLog
) -> None:
    alice = Actor(kind="user", id="alice")
    await event_log.append(
        [
            Envelope.new(
                RunStarted(entity="pj", project=f"p{n}", run_id="first"),
                stream=run_stream("pj", f"p{n}", "first"),
                actor=alice,
                occurred_at=BASE + timedelta(minutes=n),
            )
            for n in range(6)
        ]
    )
    await stack.projected()
    started = 0

    async def walk(order: str | None, active: str) -> list[str]:
        """Every page, `active` getting a run between pages."""
        nonlocal started
        seen, after = [], None
        while True:
            page = (await ok(stack, PROJECTS_PAGE, {"order": order, "after": after}))["projects"]
            seen += [p["project"] for p in page["items"]]
            if not page["hasNextPage"]:
                return seen
            after = page["endCursor"]
            run = {"entity": "pj", "project": active, "runId": f"again-{started}"}
            assert "errors" not in await stack.graphql(
                "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }", {"i": run}
            )
            started += 1

    # The most recently active first: p0, active between pages, moved to the front, past the cursor. The later pages
    # do not show it; a fresh first page does (docs/graphql-style.md).
    assert await walk(None, "p0") == ["p5", "p4", "p3", "p2", "p1"]
    assert (await ok(stack, PROJECTS_PAGE, {}))["projects"]["items"][0] == {"project": "p0"}
    assert await walk("NAME", "p5") == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert await walk("NAME", "p0") == ["p0", "p1", "p2", "p3", "p4", "p5"]


async def test_a_page_by_creation_after_a_cursor_is_still_a_range_of_the_newest_runs_index(stack: Stack) -> None:
    from modelreg.projections.registry_queries import RunFilters
    from modelreg.projections.run_order import RunPosition, order_by
    from modelreg.services.infra.database import _init_connection

    connection = await asyncpg.connect(stack.settings.database_url)
    try:
        await _init_connection(connection)
        await connection.execute("SET enable_seqscan = off")
        for filters, index in [
            (RunFilters("acme", "nature"), "runs_newest"),
            (RunFilters("acme", "nature", state="finished"), "runs_newest_by_state"),
        ]:
            where, args = filters.where()
            order = order_by("+created_at")
            assert order is not None
            statement, args = order.page("run_id", where, args, after=RunPosition("run-03", BASE), limit=5)
            plan = "\n".join(r[0] for r in await connection.fetch(f"EXPLAIN {statement}", *args))
            # The cursor's (time, run id) bounds the scan: a deep page reads no run before it.
            assert f"Scan Backward using {index} on runs" in plan and "Sort" not in plan, plan
            assert "ROW(started_at, run_id) > ROW(" in plan.partition("Index Cond: ")[2], plan
    finally:
        await connection.close()

"""A dataset used by a whole sweep: the lineage walk draws a few runs and says how many it left out; the
rest are one cluster, searched and paged through `lineageNeighbours`."""

from __future__ import annotations

from support.stack import Stack
from support.story import LOG_VERSION, sweep_run_using, version_input

RUNS = 120
FAN_OUT = 25

WALK = """query($ref: String!) {
  lineage(ref: $ref, direction: DOWNSTREAM, depth: 2, fanOut: 25) {
    nodes { id depth } truncated hidden { node direction count }
  }
}"""

NEIGHBOURS = """query($node: ID!, $direction: LineageDirection!, $search: String, $fanOut: Int, $first: Int = 50,
  $after: String) {
  lineageNeighbours(node: $node, direction: $direction, search: $search, fanOut: $fanOut, first: $first,
                    after: $after) {
    items {
      node { id kind depth run { runId name jobType } artifactVersion { name version aliases } }
      edge { source target kind }
    }
    endCursor hasNextPage totalCount
  }
}"""


async def sweep(stack: Stack) -> str:
    """nature-images (alias golden), used by sweep-000 ... sweep-119; every tenth run evaluates, the others
    train; sweep-003 also logs a model. Returns the dataset's lineage node."""
    logged = await stack.graphql(
        LOG_VERSION, {"input": version_input("nature-images", b"images", type_="dataset", aliases=["golden"])}
    )
    dataset = logged["data"]["logArtifactVersion"]["id"]

    for n in range(RUNS):  # one after another: the cluster lists them oldest first
        await sweep_run_using(stack, dataset, n, "evaluate" if n % 10 == 0 else "train")
    model = await stack.graphql(
        LOG_VERSION, {"input": version_input("classifier", b"weights", runId="sweep-003", aliases=["best"])}
    )
    assert "errors" not in model, model
    return f"artifact:{dataset}"


async def pages(stack: Stack, **variables: object) -> tuple[list[str], list[int]]:
    """Every page of a cluster: the run ids in order, and each page's totalCount."""
    ids: list[str] = []
    totals: list[int] = []
    after = None
    while True:
        answer = await stack.graphql(NEIGHBOURS, {**variables, "after": after})
        assert "errors" not in answer, answer
        page = answer["data"]["lineageNeighbours"]
        ids += [item["node"]["run"]["runId"] for item in page["items"]]
        totals.append(page["totalCount"])
        if not page["hasNextPage"]:
            return ids, totals
        after = page["endCursor"]


async def test_a_dataset_used_by_a_sweep_shows_a_few_runs_and_a_cluster_of_the_rest_that_pages_and_searches(
    stack: Stack,
) -> None:
    dataset = await sweep(stack)

    walked = (await stack.graphql(WALK, {"ref": dataset.removeprefix("artifact:")}))["data"]["lineage"]
    drawn = {n["id"] for n in walked["nodes"] if n["depth"] == 1}
    assert len(drawn) == FAN_OUT
    assert walked["hidden"][0] == {"node": dataset, "direction": "DOWNSTREAM", "count": RUNS - FAN_OUT}
    assert walked["truncated"][0] == dataset

    # The cluster: the runs the walk left out, each once, none of those it drew.
    members, totals = await pages(stack, node=dataset, direction="DOWNSTREAM", fanOut=FAN_OUT, first=40)
    assert totals == [RUNS - FAN_OUT] * 3
    assert len(members) == RUNS - FAN_OUT == len(set(members))
    assert not {f"run:acme/nature/{m}" for m in members} & drawn
    # Without fanOut, every run that used the dataset, oldest first, exactly once.
    everyone, totals = await pages(stack, node=dataset, direction="DOWNSTREAM")
    assert everyone == [f"sweep-{n:03}" for n in range(RUNS)] and totals == [RUNS] * 3

    # Search: a run by its id (any case), by its name, runs by job type; % is a character like another.
    found = await stack.graphql(
        NEIGHBOURS, {"node": dataset, "direction": "DOWNSTREAM", "search": "SWEEP-077", "fanOut": FAN_OUT}
    )
    page = found["data"]["lineageNeighbours"]
    assert page["totalCount"] == 1 and page["hasNextPage"] is False
    (item,) = page["items"]
    assert item["node"] == {
        "id": "run:acme/nature/sweep-077",
        "kind": "RUN",
        "depth": 1,
        "run": {"runId": "sweep-077", "name": "trial 77", "jobType": "train"},
        "artifactVersion": None,
    }
    assert item["edge"] == {"source": dataset, "target": "run:acme/nature/sweep-077", "kind": "USED"}
    by_name, _ = await pages(stack, node=dataset, direction="DOWNSTREAM", search="Trial 11")
    assert by_name == [
        "sweep-011",
        "sweep-110",
        "sweep-111",
        "sweep-112",
        "sweep-113",
        "sweep-114",
        "sweep-115",
        "sweep-116",
        "sweep-117",
        "sweep-118",
        "sweep-119",
    ]
    evaluations, totals = await pages(
        stack, node=dataset, direction="DOWNSTREAM", search="evaluate", fanOut=FAN_OUT, first=5
    )
    assert evaluations == [f"sweep-{n:03}" for n in range(30, RUNS, 10)] and set(totals) == {9}
    nothing = await stack.graphql(NEIGHBOURS, {"node": dataset, "direction": "DOWNSTREAM", "search": "%"})
    assert nothing["data"]["lineageNeighbours"] == {
        "items": [],
        "endCursor": None,
        "hasNextPage": False,
        "totalCount": 0,
    }

    # Upstream, artifacts are found by name:version and by alias.
    for search in ["nature-images:v0", "GOLDEN"]:
        up = await stack.graphql(
            NEIGHBOURS, {"node": "run:acme/nature/sweep-003", "direction": "UPSTREAM", "search": search}
        )
        assert [i["node"]["artifactVersion"] for i in up["data"]["lineageNeighbours"]["items"]] == [
            {"name": "nature-images", "version": "v0", "aliases": ["golden"]}
        ], search
    produced = await stack.graphql(
        NEIGHBOURS, {"node": "run:acme/nature/sweep-003", "direction": "DOWNSTREAM", "search": "best"}
    )
    assert [i["node"]["artifactVersion"]["name"] for i in produced["data"]["lineageNeighbours"]["items"]] == [
        "classifier"
    ]


async def test_bad_cluster_requests_are_refused_as_invalid_input(stack: Stack) -> None:
    dataset = await stack.graphql(LOG_VERSION, {"input": version_input("nature-images", b"images", type_="dataset")})
    node = f"artifact:{dataset['data']['logArtifactVersion']['id']}"
    for variables in [
        {"node": node, "direction": "BOTH"},
        {"node": node, "direction": "DOWNSTREAM", "first": 0},
        {"node": node, "direction": "DOWNSTREAM", "first": 501},
        {"node": node, "direction": "DOWNSTREAM", "fanOut": -1},
        {"node": node, "direction": "DOWNSTREAM", "after": "not-a-cursor"},
        {"node": "artifact:not-a-version", "direction": "DOWNSTREAM"},
    ]:
        refused = await stack.graphql(NEIGHBOURS, variables)
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT", (variables, refused)
    missing = await stack.graphql(NEIGHBOURS, {"node": "run:acme/nature/no-such-run", "direction": "UPSTREAM"})
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"

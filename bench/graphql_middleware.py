"""What the one error path costs: a page of 500 artifact versions (about 12,000 resolved fields) executed
in-process, from in-memory reads, with the resolver middleware as the API installs it (storable arguments,
then errors) and with the storable-arguments middleware alone (what the API ran before `report_errors`).

Prints the median and p90 of each, alternating the two so that the machine's load falls on both alike.
The last line is key=value pairs.
Usage: python bench/graphql_middleware.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from graphql.execution.middleware import MiddlewareManager

from graphql import graphql, parse
from modelreg.graphql.answer_budget import AnswerBudget
from modelreg.graphql.schema import RESOLVER_MIDDLEWARE, build_schema
from modelreg.graphql.storable_arguments import refuse_unstorable_arguments
from modelreg.projections.readable import EVERYTHING

PAGE = 500
QUERY = f"""{{ artifactVersions(entity: "acme", project: "nature", name: "classifier", first: {PAGE}) {{
  items {{ id entity project name type version digest description metadata aliases tags createdAt createdBy
           files {{ path size digest ref }} }}
  endCursor hasNextPage }} }}"""


def version(n: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "entity": "acme",
        "project": "nature",
        "name": "classifier",
        "artifact_type": "model",
        "version_index": n,
        "digest": "sha256:" + "ab" * 32,
        "description": None,
        "metadata": {"lr": 0.01},
        "aliases": ["staging"] if n == 3 else [],
        "tags": [],
        "manifest": [{"path": "model.pt", "size": 3, "digest": "sha256:" + "cd" * 32}],
        "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "created_by": "user:alice",
    }


class InMemoryReads:
    def __init__(self) -> None:
        self.rows = [version(n) for n in range(PAGE + 1)]

    async def artifact_versions_page(self, *args: Any, limit: int, **kwargs: Any) -> list[dict[str, Any]]:
        return self.rows[:limit]


class Context:
    """The parts of graphql/context.py's RequestContext this page's resolvers use, read from memory."""

    def __init__(self) -> None:
        self.reads = InMemoryReads()
        self.readable = EVERYTHING
        self.answer_budget = AnswerBudget()


async def timed(schema: Any, middleware: MiddlewareManager, context: Context) -> float:
    started = time.perf_counter()
    result = await graphql(schema, QUERY, context_value=context, middleware=middleware)
    elapsed = (time.perf_counter() - started) * 1000
    assert not result.errors, result.errors
    return elapsed


async def main(runs: int) -> None:
    schema = build_schema().graphql_schema
    parse(QUERY)
    context = Context()
    variants = {"without": MiddlewareManager(refuse_unstorable_arguments), "with": RESOLVER_MIDDLEWARE}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(10):  # warm-up
        for middleware in variants.values():
            await timed(schema, middleware, context)
    for _ in range(runs):
        for name, middleware in variants.items():
            samples[name].append(await timed(schema, middleware, context))
    figures = {}
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        figures[name] = median
        print(f"{PAGE} versions, {name} report_errors: median {median:.1f} ms, p90 {p90:.1f} ms")
    overhead = (figures["with"] / figures["without"] - 1) * 100
    print(f"overhead of the error middleware on a {PAGE}-item page: {overhead:+.1f}%")
    print(f"without_ms={figures['without']:.2f} with_ms={figures['with']:.2f} overhead_pct={overhead:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    asyncio.run(main(parser.parse_args().runs))

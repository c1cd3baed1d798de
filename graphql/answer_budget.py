"""How much stored data of any size one answer may carry, over every field of a request together: the JSON values
(a run's config, summary and environment, a version's metadata, an audit record's details), the files listed of
versions, and what lineage walks draw.

The cost limit (cost.py) counts a JSON value as one resolution and a file list as ten, whatever their size, and a
stored value may be as big as an event (8 MiB), a version may list tens of thousands of references: 100 aliases
of a run's 4 MiB config made an answer of 400 MiB, 60 aliases of a version of 40,000 files took the event loop 70
to 90 s (every other request, /healthz too, waited). So each such value is measured as it is resolved (a JSON
value once per request: aliases of one value share its measure) and counted against the request's budget; past
it, the field is refused, saying what to ask for instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from graphql.pyutils import is_awaitable

from graphql import (
    GraphQLList,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationType,
    default_field_resolver,
    get_nullable_type,
)
from modelreg.errors import InvalidInput

# Room for several values as big as an event, not for a multiple of them: encoding this much takes the event loop
# about half a second.
MAX_ANSWER_BYTES = 128 * 1024**2
# Files listed, each an object resolved field by field (about 37 us a file): 100,000 take the loop about 4 s. As
# for Run.metrics (graphql/metrics.py), a bound on what one request asks for; the first version's files are listed
# whatever their number, or a version of more could not be downloaded at all.
MAX_FILES_LISTED = 100_000
# The nodes and edges the lineage walks of one request draw together (graphql/lineage.py says why): the web UI asks
# for one walk at a time, and a graph of more than this is more than its drawing can show.
MAX_LINEAGE_PER_REQUEST = 50_000
# The files and metadata of listed versions, the configs, summaries and environments of listed runs, and the like
# of audit records, Launch jobs and automations, read from the table as JSON: a list reads them only when asked, a
# few rows at a time (graphql/context.py), until a request has read this much.
MAX_CONTENTS_READ = MAX_ANSWER_BYTES
FILE_LISTS = ("ArtifactVersion", "files")
# Metric points have their own budget (graphql/metrics.py), and a scan's rows are many and small.
NOT_MEASURED = frozenset({("MetricHistoryRow", "values")})


class AnswerBudget:
    """What one request's answer carries so far (graphql/context.py keeps one per request)."""

    def __init__(self) -> None:
        self.used = 0
        self.files_listed = 0
        self.contents_read = 0  # bytes of listed rows' stored values (MAX_CONTENTS_READ's) read so far (as JSON)
        self.lineage_left = MAX_LINEAGE_PER_REQUEST  # what lineage walks may still draw (graphql/lineage.py)
        # A request's walks take turns: side by side, each would start before any had counted what it drew, and
        # aliases of a walk would hold every connection of the pool.
        self.lineage_turn = asyncio.Lock()
        self._sizes: dict[int, tuple[Any, int]] = {}  # id -> (the value, kept alive so its id is not reused; size)

    def take(self, value: Any, where: str) -> None:
        """Count a JSON value (`where` is its Type.field)."""
        found = self._sizes.get(id(value))
        if found is None:
            found = self._sizes[id(value)] = (value, _size(value))
        self.used += found[1]
        if self.used > MAX_ANSWER_BYTES:
            raise InvalidInput(
                f"this request's answer would carry over {MAX_ANSWER_BYTES // 1024**2} MiB of stored JSON values "
                f"({where} among them): ask for fewer aliases, a smaller page (first:) or fewer of those fields in "
                "one request"
            )

    def may_read_contents(self) -> None:
        """Refuse to read more stored values of listed rows (MAX_CONTENTS_READ's) once the request has read its
        share: checked before each read, so the first rows are always read."""
        if self.contents_read > MAX_CONTENTS_READ:
            raise InvalidInput(
                f"this request reads over {MAX_CONTENTS_READ // 1024**2} MiB of stored values of artifact versions "
                "(files, size, metadata), runs (config, summary, environment), audit records (details), Launch jobs "
                "(source, config, overrides) or automations (action): ask for those fields of fewer of them in one "
                "request (a smaller page, fewer aliases)"
            )

    def take_files(self, files: list[Any]) -> None:
        """Count a version's files listed."""
        first = self.files_listed == 0
        self.files_listed += len(files)
        if self.files_listed > MAX_FILES_LISTED and not first:
            raise InvalidInput(
                f"this request lists over {MAX_FILES_LISTED:,} files of artifact versions (ArtifactVersion.files): "
                "ask for the files of fewer versions in one request (a smaller page, fewer aliases)"
            )


def measure_stored_data(schema: GraphQLSchema) -> None:
    """Make every field of stored data (each field of the JSON scalar's type, and the file lists) count its value
    against its request's budget. Their resolvers are wrapped, not every field's: a middleware, called for each of
    the 12,000 fields of a page of 500 versions, cost that page 15%."""
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            unwrapped = get_nullable_type(field.type)
            json_value = not isinstance(unwrapped, GraphQLList) and unwrapped.name == "GenericScalar"
            where = (type_.name, name)
            if (json_value or where == FILE_LISTS) and where not in NOT_MEASURED:
                field.resolve = _counting(field.resolve or default_field_resolver, where)


def _counting(resolve: Callable[..., Any], field: tuple[str, str]) -> Callable[..., Any]:
    def counted(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        result = resolve(root, info, **args)
        budget = getattr(info.context, "answer_budget", None)
        if budget is None or info.operation.operation == OperationType.SUBSCRIPTION:
            return result  # a live event is encoded and sent on its own, one at a time
        if is_awaitable(result):
            return _counted(result, budget, field)
        _count(result, budget, field)
        return result

    return counted


async def _counted(result: Any, budget: AnswerBudget, field: tuple[str, str]) -> Any:
    value = await result
    _count(value, budget, field)
    return value


def _count(value: Any, budget: AnswerBudget, field: tuple[str, str]) -> None:
    if field == FILE_LISTS:
        budget.take_files(value)
    elif isinstance(value, dict | list) and value:
        budget.take(value, ".".join(field))


def _size(value: Any) -> int:
    """The bytes of `value` as JSON (orjson: about a GB/s)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:  # a value JSON does not hold as it is (a date): as the answer will write it
        return len(orjson.dumps(value, default=str))

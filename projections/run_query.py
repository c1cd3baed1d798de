"""W&B's MongoDB-style run filters (`Api().runs(path, filters=...)`), as SQL on `runs` (orders: run_order.py).

    {"$and": [{"config.lr": {"$gt": 0.01}}, {"tags": {"$in": ["baseline"]}}, {"state": "finished"}]}

Keys: `config.<path>` and `summary_metrics.<path>` (W&B's config wrapping `.value`, last or after the top-level
config key as in `config.model.value.depth`, is dropped),
`tags`, `state`, `display_name` (the run's name), `name` or `id` (the run id, as W&B names it), `group`,
`jobType`/`job_type`, `createdAt`/`created_at` (`state` in any case: `RUNNING` as `running`). Operators: `$eq
$ne $gt $gte $lt $lte $in $nin $regex $exists` on a key, and `$not` around operators on a key (`{"config.lr":
{"$not": {"$gt": 0.1}}}`); `$and $or $nor $not` around conditions.

As in MongoDB, a negation (`$nor`, `$not`, `$ne`, `$nin`) matches the runs its condition does not, those that
lack the key or hold another type of value in it included: a test SQL leaves unknown (NULL: `#>>` on a missing
key, `~` on a NULL column, a jsonpath `@@` comparing a string with a number) counts as false inside one.
Equality (`$eq $ne $in $nin`) on config and summary is MongoDB's too: an equal JSON value (numbers compare as
numbers, 1 == 1.0; an array equals only the same array; an object only the same keys and values), or an array
holding the value as one of its elements (`{"config.layers": 64}` finds `[64, 32]`).

Which index answers what: every query is within one project (the `runs_newest*` b-trees). Equality and
`$in` on config and summary are first narrowed by containment (`config @> ANY($n::jsonb[])` of
`{"lr": 0.01}` and `{"lr": [0.01]}`: the value, or an array holding it) and then checked exactly, and `$exists`
is a jsonpath `@?`, both answered by the GIN indexes `runs_by_config`/`runs_by_summary`; tags by the GIN
`runs_by_tag`; state and job type by their b-trees. Ranges and `$regex` on config or summary are checked on
the rows of the project that the other conditions leave (jsonb_path_ops indexes equality only).

Values travel as bind parameters, never as SQL text; a jsonpath is built from JSON-encoded literals.
A parameter cast to jsonb is bound as the Python value (the pool's codec encodes jsonb).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.events.automations import has_back_reference
from modelreg.projections.timestamps import parsed_time

MAX_CONDITIONS = 100
MAX_DEPTH = 8
MAX_IN = 100
# Within PostgreSQL's 32,767 parameters a statement, with room for the page's own: 99 conditions of two $in lists on
# a nested summary key (each bound twice) bound 39,602 values, and the query failed inside the driver.
MAX_VALUES = 30_000

_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
# The columns a filter or an order (run_order.py) names, and the JSON documents whose key paths they name.
COLUMNS = {
    "state": "state",
    # A run given no name shows its id as its name (as the client's run.name does), and is found by it.
    "display_name": "coalesce(name, run_id)",
    "displayName": "coalesce(name, run_id)",
    "name": "run_id",
    "id": "run_id",
    "group": "group_name",
    "jobType": "job_type",
    "job_type": "job_type",
    "createdAt": "started_at",
    "created_at": "started_at",
}
DOCUMENTS = {"config": "config", "summary_metrics": "summary", "summary": "summary"}


@dataclass
class RunQuery:
    """SQL conditions built with parameters numbered after `first_parameter - 1` existing ones."""

    first_parameter: int
    args: list[Any] = field(default_factory=list)
    _conditions: int = 0

    def bind(self, value: Any) -> str:
        if len(self.args) == MAX_VALUES:
            raise InvalidInput(f"runs filter compares with more than {MAX_VALUES:,} values: use fewer $in lists")
        self.args.append(value)
        return f"${self.first_parameter + len(self.args) - 1}"

    def where(self, filters: dict[str, Any], depth: int = 0) -> str:
        if not isinstance(filters, dict):
            raise InvalidInput(f"a runs filter is an object such as {{'state': 'finished'}}, not {filters!r}")
        if depth > MAX_DEPTH:
            raise InvalidInput(f"runs filter nests deeper than {MAX_DEPTH} levels")
        parts = [self._one(key, value, depth) for key, value in filters.items()]
        return " AND ".join(parts) if parts else "true"

    def _one(self, key: str, value: Any, depth: int) -> str:
        self._conditions += 1
        if self._conditions > MAX_CONDITIONS:
            raise InvalidInput(f"runs filter has more than {MAX_CONDITIONS} conditions")
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise InvalidInput(f"{key} takes a non-empty list of filters")
            joined = (" AND " if key == "$and" else " OR ").join(f"({self.where(v, depth + 1)})" for v in value)
            return _negated(joined) if key == "$nor" else joined
        if key == "$not":
            return _negated(self.where(value, depth + 1))
        if key.startswith("$"):
            raise InvalidInput(f"unknown runs filter operator {key!r} (use $and, $or, $nor, $not)")
        operations = value if isinstance(value, dict) and any(k.startswith("$") for k in value) else {"$eq": value}
        return " AND ".join(self._operation(key, op, operand) for op, operand in operations.items()) or "true"

    def _operation(self, key: str, op: str, operand: Any, negated: bool = False) -> str:
        if op == "$not":  # MongoDB's {"config.lr": {"$not": {"$gt": 0.1}}}: a run lacking the key matches it
            if negated or not isinstance(operand, dict) or not operand or not all(k.startswith("$") for k in operand):
                raise InvalidInput(f"$not on {key!r} takes operators on it, such as {{'$gt': 1}}, not {operand!r}")
            return _negated(" AND ".join(self._operation(key, o, v, negated=True) for o, v in operand.items()))
        document, _, path = key.partition(".")
        if document in DOCUMENTS and path:
            return self._on_document(DOCUMENTS[document], key_path(path, document), op, operand, key)
        if key == "tags":
            return self._on_tags(op, operand)
        if key not in COLUMNS:
            raise InvalidInput(
                f"runs cannot be filtered by {key!r}: use config.<key>, summary_metrics.<key>, tags, state, "
                "display_name, name, group, jobType or createdAt"
            )
        return self._on_column(COLUMNS[key], op, operand, key)

    def _on_column(self, column: str, op: str, operand: Any, key: str) -> str:
        if column == "started_at":
            operand = [_time(v, key) for v in operand] if isinstance(operand, list) else _time(operand, key)
        elif op not in ("$exists", "$regex"):
            operand = [_text(v, key) for v in operand] if isinstance(operand, list) else _text(operand, key)
        if column == "state" and op != "$exists":
            return self._on_state(op, operand, key)
        return self._compared(column, op, operand, key)

    def _on_state(self, op: str, operand: Any, key: str) -> str:
        """States are stored lower case (`running`) and the GraphQL enum spells them upper (`RUNNING`): a filter
        written either way finds the same runs (`RUNNING` found none, without a word)."""
        if op == "$regex":
            return f"state ~* {self.bind(_pattern(operand))}"
        lowered = [v.lower() for v in operand] if isinstance(operand, list) else operand.lower()
        return self._compared("state", op, lowered, key)

    def _compared(self, column: str, op: str, operand: Any, key: str) -> str:
        if op == "$eq":
            return f"{column} = {self.bind(operand)}"
        if op == "$ne":
            return f"{column} IS DISTINCT FROM {self.bind(operand)}"
        if op in _COMPARISONS:
            return f"{column} {_COMPARISONS[op]} {self.bind(operand)}"
        if op in ("$in", "$nin"):
            values = _listed(operand, op)
            kind = "timestamptz[]" if column == "started_at" else "text[]"
            test = f"{column} = ANY({self.bind(values)}::{kind})"
            return test if op == "$in" else f"NOT coalesce({test}, false)"
        if op == "$regex":
            return f"{column} ~ {self.bind(_pattern(operand))}"
        if op == "$exists":
            return f"{column} IS {'NOT ' if operand else ''}NULL"
        raise InvalidInput(f"unknown operator {op!r} on {key!r}")

    def _on_tags(self, op: str, operand: Any) -> str:
        if op == "$eq":
            return f"tags @> ARRAY[{self.bind(_text(operand, 'tags'))}]::text[]"
        if op == "$ne":
            return f"NOT tags @> ARRAY[{self.bind(_text(operand, 'tags'))}]::text[]"
        if op in ("$in", "$nin", "$all"):
            values = [_text(v, "tags") for v in _listed(operand, op)]
            test = f"tags {'@>' if op == '$all' else '&&'} {self.bind(values)}::text[]"
            return f"NOT {test}" if op == "$nin" else test
        if op == "$regex":
            return f"EXISTS (SELECT 1 FROM unnest(tags) t WHERE t ~ {self.bind(_pattern(operand))})"
        if op == "$exists":
            return "cardinality(tags) > 0" if operand else "cardinality(tags) = 0"
        raise InvalidInput(f"operator {op!r} does not apply to tags (use $in, $nin, $all, $ne, $regex, $exists)")

    def _on_document(self, column: str, path: list[str], op: str, operand: Any, key: str) -> str:
        if column != "summary" or len(path) < 2:
            return self._on_path(column, path, op, operand, key)
        # `run.log({"train": {"loss": x}})` keeps the key flat in the summary ("train.loss", as its curve is
        # named), where W&B nests it: a filter written for W&B finds either.
        nested = self._on_path(column, path, op, operand, key)
        flat = self._on_path(column, [".".join(path)], op, operand, key)
        neither = op in ("$ne", "$nin") or (op == "$exists" and not operand)
        return f"(({nested}) {'AND' if neither else 'OR'} ({flat}))"

    def _on_path(self, column: str, path: list[str], op: str, operand: Any, key: str) -> str:
        if op in ("$eq", "$ne", "$in", "$nin"):
            test = self._equals(column, path, [operand] if op in ("$eq", "$ne") else _listed(operand, op))
            return test if op in ("$eq", "$in") else _negated(test)
        if op in _COMPARISONS:
            if not isinstance(operand, (int, float, str)) or isinstance(operand, bool):
                raise InvalidInput(f"{key} {op} compares with a number or a string, not {operand!r}")
            return f"{column} @@ {self.bind(f'{_jsonpath(path)} {_COMPARISONS[op]} {json.dumps(operand)}')}::jsonpath"
        if op == "$exists":
            test = f"{column} @? {self.bind(_jsonpath(path))}::jsonpath"
            return test if operand else f"NOT {test}"
        if op == "$regex":
            return f"({column} #>> {self.bind(path)}::text[]) ~ {self.bind(_pattern(operand))}"
        raise InvalidInput(f"unknown operator {op!r} on {key!r}")

    def _equals(self, column: str, path: list[str], values: list[Any]) -> str:
        """MongoDB's equality with any of `values`: the key's value equals one, or is an array holding one.
        Containment first (the GIN index answers it: the value, or an array holding it, at the path; a superset,
        since `[1, 2]` contains `[1]` and `{"a": 1, "b": 2}` contains `{"a": 1}`), then the exact test on the rows
        it leaves. Three parameters whatever the number of values; `values` travel as one JSON array, since an
        array of jsonb would read a value that is a list as a dimension."""
        contains = self.bind([_nested(path, v) for value in values for v in (value, [value])])
        found = f"{column} #> {self.bind(path)}::text[]"
        holding = f"jsonb_array_elements(CASE jsonb_typeof({found}) WHEN 'array' THEN {found} END)"
        wanted = f"jsonb_array_elements({self.bind(values)}::jsonb) AS wanted"
        return (
            f"({column} @> ANY({contains}::jsonb[]) AND EXISTS (SELECT FROM {wanted} "
            f"WHERE wanted.value = ({found}) OR wanted.value IN (SELECT {holding})))"
        )


def key_path(dotted: str, document: str) -> list[str]:
    """A key path in `document` (config, summary_metrics): W&B keeps each config key as {"value": ..., "desc": ...},
    so its filters name `config.lr.value` and `config.model.value.depth`; that `value`, after the top-level config
    key or last, is not in the config here and is left out."""
    parts = dotted.split(".")
    if len(parts) > 1 and parts[-1] == "value":
        parts = parts[:-1]
    if document == "config" and len(parts) > 2 and parts[1] == "value":
        parts = [parts[0], *parts[2:]]
    if not all(parts) or len(parts) > 10:
        raise InvalidInput(f"{dotted!r} is not a key path such as lr or optimizer.lr")
    return parts


def _jsonpath(path: list[str]) -> str:
    return "$" + "".join(f".{json.dumps(p)}" for p in path)


def _negated(condition: str) -> str:
    """NOT of a condition SQL may leave unknown (NULL, and NOT NULL is NULL: the run would be left out of both
    the condition and its negation), taken as false first, as MongoDB's negations match a missing key."""
    return f"NOT coalesce(({condition}), false)"


def _nested(path: list[str], value: Any) -> dict[str, Any]:
    """The object a containment test looks for (bound as jsonb: the pool's codec encodes it)."""
    for part in reversed(path):
        value = {part: value}
    return value


def _listed(operand: Any, op: str) -> list[Any]:
    if not isinstance(operand, list) or not operand or len(operand) > MAX_IN:
        raise InvalidInput(f"{op} takes a list of 1 to {MAX_IN} values")
    return operand


def _text(value: Any, key: str) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise InvalidInput(f"{key} compares with a string, not {value!r}")
    return str(value)


def _time(value: Any, key: str) -> datetime:
    # W&B's own examples write times without a zone, and its server reads them as UTC (as parsed_time does).
    try:
        return parsed_time(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{key} compares with an ISO 8601 time such as 2026-12-01T09:00:00Z (years 1 to 9999 in UTC), not {value!r}"
        ) from None


def _pattern(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 500:
        raise InvalidInput("$regex takes a regular expression (a string of at most 500 characters)")
    if has_back_reference(value):  # PostgreSQL backtracks for them alone: one search could take minutes
        raise InvalidInput(f"$regex {value!r} refers back to a group (\\1 to \\9), which is not supported: drop it")
    return value

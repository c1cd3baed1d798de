"""W&B's run orders (`Api().runs(path, order=...)`) as SQL on `runs`, and the page of a project's runs after a
position in one.

    +summary_metrics.acc   config.lr   -display_name   -heartbeat_at   +created_at   (-created_at: the default)

An order sorts by its key and breaks ties by run id. Runs lacking the key (a config or summary key, a group, a job
type) come last either way. Config and summary values compare as PostgreSQL's jsonb compares them: by value within
a kind (numbers as numbers), and kinds in jsonb's order: a JSON null, strings, numbers, booleans, arrays, objects
(an empty array before null).

A page ends at a position (RunPosition): its last run's sort value and id, and the next page is the runs after it
in the same order. A run started between pages then neither repeats a run nor is passed over for one (OFFSET
repeated one a page). The value is the one the page showed, not the run's as it is now, so that a run whose value
changed since (a summary updated as it trains, a rename) moves only itself: it may be missed or shown twice. A value
too long to carry in a cursor (over MAX_CARRIED characters: a big config object) is read again from the run.

A key that is never NULL is compared as a row, `(key, run_id) > ($v, $id)`, which a b-tree answers: `+created_at`
pages are a range of `runs_newest`, as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.events.storable_text import refuse_unstorable
from modelreg.projections.run_query import COLUMNS, DOCUMENTS, key_path
from modelreg.projections.timestamps import parsed_time

# W&B's heartbeat_at: when the run was last heard from (its end, its last heartbeat, else its start).
HEARD_AT = "greatest(finished_at, last_heartbeat_at, started_at)"
_ORDERS = {**COLUMNS, "tags": "tags", "heartbeat_at": HEARD_AT, "heartbeatAt": HEARD_AT}
# How a cursor carries a value of each key (text otherwise), and the keys that may be NULL (the others never are:
# a run's name shows its id when it has none; heartbeat_at falls back on its start).
_KINDS = {"started_at": "timestamptz", HEARD_AT: "timestamptz", "tags": "text[]"}
_NULLABLE = ("group_name", "job_type")
MAX_CARRIED = 1024  # characters; and at most 512 levels deep, which json.loads reads back

# Where a page ends, as its cursor says: at a value, at a run lacking the key, or at a value read again from the run.
AT_VALUE, AT_MISSING, AT_RUN = "value", "missing", "run"


@dataclass(frozen=True)
class RunPosition:
    """The last run of a page: its id, and its sort value as the page showed it (None: it lacks the key), or
    `read_again` from the run when too long to carry."""

    run_id: str
    value: Any = None
    read_again: bool = False


@dataclass(frozen=True)
class RunOrder:
    """An order of a project's runs: by `expression` (a config or summary key path in it is `$path`), then run id."""

    name: str  # as cursors name it: +config.lr, -display_name
    expression: str
    kind: str  # "text", "timestamptz", "text[]" or "jsonb"
    descending: bool
    nullable: bool
    path: list[str] | None = None

    def page(
        self, columns: str, where: str, args: list[Any], *, after: RunPosition | None, limit: int
    ) -> tuple[str, list[Any]]:
        """The statement of a page: up to `limit` runs matching `where` (RunFilters.where: `entity = $1 AND project =
        $2 ...`, its `args` bound first) after `after`, with `columns` and the `sort_value` a cursor carries."""
        args = list(args)

        def bind(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        key = self.expression if self.path is None else self.expression.replace("$path", f"{bind(self.path)}::text[]")
        conditions = [where]
        if after is not None:
            conditions.append(self._after(key, after, bind))
        carried = f"left(({key})::text, {MAX_CARRIED + 1})" if self.kind == "jsonb" else key
        direction = "DESC" if self.descending else "ASC"
        statement = (
            f"SELECT {columns}, {carried} AS sort_value FROM runs WHERE {' AND '.join(conditions)} "
            f"ORDER BY {key} {direction} NULLS LAST, run_id {direction} LIMIT {bind(limit)}"
        )
        return statement, args

    def _after(self, key: str, after: RunPosition, bind: Any) -> str:
        beyond = "<" if self.descending else ">"
        run_id = bind(after.run_id)
        if after.read_again:
            value = f"(SELECT {key} FROM runs WHERE entity = $1 AND project = $2 AND run_id = {run_id})"
        elif after.value is None:  # among the runs lacking the key, last either way: by run id alone
            return f"({key} IS NULL AND run_id {beyond} {run_id})"
        else:
            value = f"{bind(after.value)}::{'text::jsonb' if self.kind == 'jsonb' else self.kind}"
        if not self.nullable:
            return f"({key}, run_id) {beyond} ({value}, {run_id})"
        return f"({key} {beyond} {value} OR ({key} = {value} AND run_id {beyond} {run_id}) OR {key} IS NULL)"

    def cursor_parts(self, row: dict[str, Any]) -> tuple[str, str, str]:
        """Where a page ending at `row` (one of `page`'s) ends, as the three parts of its cursor."""
        value = row["sort_value"]
        if value is None:
            return AT_MISSING, "", row["run_id"]
        if self.kind == "timestamptz":
            text = value.isoformat()
        else:
            text = json.dumps(value) if self.kind == "text[]" else value
        if len(text) > MAX_CARRIED:
            return AT_RUN, "", row["run_id"]
        return AT_VALUE, text, row["run_id"]

    def position(self, at: str, text: str, run_id: str) -> RunPosition:
        """The position the parts of a cursor say; ValueError when they are none `cursor_parts` writes (a value
        PostgreSQL would refuse failed inside the query: an INTERNAL error for the caller's mistake)."""
        if at == AT_MISSING and not text:
            return RunPosition(run_id)
        if at == AT_RUN and not text:
            return RunPosition(run_id, read_again=True)
        if at != AT_VALUE:
            raise ValueError(at)
        if self.kind == "timestamptz":
            return RunPosition(run_id, parsed_time(text))
        if self.kind == "text[]":
            tags = json.loads(text)
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError(text)
            refuse_unstorable(tags, "cursor")
            return RunPosition(run_id, tags)
        if self.kind == "jsonb":
            _check_jsonb(text)
        return RunPosition(run_id, text)


def order_by(order: str | None) -> RunOrder | None:
    """W&B's `order`: `-created_at` (the default: newest first, None here), `+summary_metrics.acc`,
    `config.lr`, `display_name`..."""
    if order is None or order.strip() in ("", "-created_at", "-createdAt"):
        return None
    text = order.strip()
    descending = text.startswith("-")
    sign = "-" if descending else "+"
    key = text.lstrip("+-")
    document, _, dotted = key.partition(".")
    if document in DOCUMENTS and dotted:
        column, path = DOCUMENTS[document], key_path(dotted, document)
        expression = f"({column} #> $path)"
        if column == "summary" and len(path) > 1:  # nested as W&B keeps it, or flat as run.log does (RunQuery)
            expression = f"coalesce({column} #> $path, {column} -> array_to_string($path, '.'))"
        return RunOrder(f"{sign}{column}.{'.'.join(path)}", expression, "jsonb", descending, True, path)
    if key in _ORDERS:
        expression = _ORDERS[key]
        kind = _KINDS.get(expression, "text")
        return RunOrder(f"{sign}{key}", expression, kind, descending, expression in _NULLABLE)
    raise InvalidInput(f"runs cannot be ordered by {key!r}: use created_at, config.<key>, summary_metrics.<key>...")


def _check_jsonb(text: str) -> None:
    """ValueError unless PostgreSQL's jsonb reads `text`: JSON without NaN or Infinity, whose strings hold no U+0000
    or lone surrogate, and whose numbers its numeric holds."""
    try:
        value = json.loads(text, parse_constant=_refused, parse_float=_numeric, parse_int=_numeric)
    except RecursionError:
        raise ValueError("nested too deep") from None
    refuse_unstorable(value, "cursor")


def _refused(constant: str) -> Any:
    raise ValueError(constant)


def _numeric(text: str) -> Decimal:
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # a JSON number is finite
    if number.adjusted() >= 131072 or -exponent > 16383:  # numeric: 131,072 digits before the point, 16,383 after
        raise ValueError(text)
    return number

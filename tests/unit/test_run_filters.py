"""W&B's MongoDB-style run filters become SQL with bound values, or a refusal that says what to write."""

from __future__ import annotations

import pytest

from modelreg.errors import InvalidInput
from modelreg.projections.run_order import RunOrder, order_by
from modelreg.projections.run_query import RunQuery


def translated(filters: dict) -> tuple[str, list]:
    query = RunQuery(first_parameter=3)  # $1 and $2 are the entity and project
    return query.where(filters), query.args


EQUALS = (
    "(config @> ANY($3::jsonb[]) AND EXISTS (SELECT FROM jsonb_array_elements($5::jsonb) AS wanted "
    "WHERE wanted.value = (config #> $4::text[]) OR wanted.value IN (SELECT jsonb_array_elements("
    "CASE jsonb_typeof(config #> $4::text[]) WHEN 'array' THEN config #> $4::text[] END))))"
)


def test_config_equality_is_narrowed_by_containment_that_the_gin_index_answers_then_checked_exactly() -> None:
    # Containment of the value, or of an array holding it; then the value at the path equals it, or holds it.
    assert translated({"config.lr": 0.01}) == (EQUALS, [[{"lr": 0.01}, {"lr": [0.01]}], ["lr"], [0.01]])
    assert translated({"config.optimizer.name.value": "adam"})[1] == [
        [{"optimizer": {"name": "adam"}}, {"optimizer": {"name": ["adam"]}}],
        ["optimizer", "name"],
        ["adam"],
    ]  # W&B's {"value": ...} wrapping is dropped
    # $in binds its values as one JSON array (a list among them is a value, not a dimension of a jsonb[]).
    assert translated({"config.lst": {"$in": [[1], 2]}}) == (
        EQUALS,
        [[{"lst": [1]}, {"lst": [[1]]}, {"lst": 2}, {"lst": [2]}], ["lst"], [[1], 2]],
    )
    assert translated({"config.lst": {"$ne": [1]}})[0] == f"NOT coalesce(({EQUALS}), false)"
    assert translated({"config.lst": {"$nin": [1, 2]}})[0] == f"NOT coalesce(({EQUALS}), false)"


def test_w_and_b_s_value_after_a_top_level_config_key_names_the_nested_key_beneath_it() -> None:
    # W&B keeps config={"model": {"depth": 2}} as {"model": {"value": {"depth": 2}}}: its filters and orders say
    # config.model.value.depth, which is model.depth here. Only there: a summary keeps no such wrapping.
    for key in ("config.model.value.depth", "config.model.value.depth.value", "config.model.depth"):
        assert translated({key: {"$gt": 1}}) == ("config @@ $3::jsonpath", ['$."model"."depth" > 1'])
    assert translated({"config.model.value": {"$exists": True}})[1] == ['$."model"']
    assert translated({"summary_metrics.val.value.acc": {"$exists": True}})[1][0] == '$."val"."value"."acc"'
    assert order_by("-config.model.value.depth").path == ["model", "depth"]  # type: ignore[union-attr]


def test_a_negation_counts_a_test_sql_leaves_unknown_as_false_as_mongodb_matches_a_missing_key() -> None:
    assert translated({"$nor": [{"config.bs": {"$regex": "b"}}, {"group": "g"}]}) == (
        "NOT coalesce((((config #>> $3::text[]) ~ $4) OR (group_name = $5)), false)",
        [["bs"], "b", "g"],
    )
    assert translated({"$not": {"config.lr": {"$gt": 0.05}}}) == (
        "NOT coalesce((config @@ $3::jsonpath), false)",
        ['$."lr" > 0.05'],
    )
    # MongoDB's form, $not on the key around its operators.
    assert translated({"config.lr": {"$not": {"$gt": 0.001, "$lt": 0.05}}}) == (
        "NOT coalesce((config @@ $3::jsonpath AND config @@ $4::jsonpath), false)",
        ['$."lr" > 0.001', '$."lr" < 0.05'],
    )
    assert translated({"group": {"$not": {"$regex": "^g"}}}) == ("NOT coalesce((group_name ~ $3), false)", ["^g"])
    assert translated({"summary_metrics.val.acc": {"$not": {"$gte": 0.8}}})[0] == (
        "NOT coalesce((((summary @@ $3::jsonpath) OR (summary @@ $4::jsonpath))), false)"
    )
    assert translated({"tags": {"$not": {"$in": ["a"]}}})[0] == "NOT coalesce((tags && $3::text[]), false)"


def test_ranges_and_existence_are_jsonpath_with_the_value_as_a_json_literal() -> None:
    assert translated({"summary_metrics.acc": {"$gte": 0.9, "$lt": 1}}) == (
        "summary @@ $3::jsonpath AND summary @@ $4::jsonpath",
        ['$."acc" >= 0.9', '$."acc" < 1'],
    )
    assert translated({"config.name": {"$gt": 'x" || true'}})[1] == ['$."name" > "x\\" || true"']
    assert translated({"config.lr": {"$exists": False}}) == ("NOT config @? $3::jsonpath", ['$."lr"'])


def test_a_summary_key_logged_as_a_nested_dict_is_found_nested_or_flat() -> None:
    sql, args = translated({"summary_metrics.val.acc": 0.9})
    assert sql.startswith("(((summary @> ANY($3::jsonb[]) AND") and ") OR ((summary @> ANY($6::jsonb[]) AND" in sql
    assert args[:3] == [[{"val": {"acc": 0.9}}, {"val": {"acc": [0.9]}}], ["val", "acc"], [0.9]]  # nested
    assert args[3:] == [[{"val.acc": 0.9}, {"val.acc": [0.9]}], ["val.acc"], [0.9]]  # or flat
    assert translated({"summary_metrics.val.acc": {"$exists": False}})[0] == (
        "((NOT summary @? $3::jsonpath) AND (NOT summary @? $4::jsonpath))"
    )
    assert translated({"config.opt.name": "adam"})[1][1] == ["opt", "name"]  # config is stored as sent, nested
    order = order_by("-summary_metrics.val.acc")
    assert order is not None and order.path == ["val", "acc"]
    statement, args = order.page("run_id", "entity = $1 AND project = $2", ["e", "p"], after=None, limit=5)
    assert "ORDER BY coalesce(summary #> $3::text[], summary -> array_to_string($3::text[], '.')) DESC" in statement
    assert args == ["e", "p", ["val", "acc"], 5]


def test_logic_tags_and_columns_nest_with_parameters_numbered_in_order() -> None:
    sql, args = translated(
        {"$or": [{"tags": {"$in": ["a", "b"]}}, {"$and": [{"state": "finished"}, {"display_name": {"$regex": "^r"}}]}]}
    )
    assert sql == "(tags && $3::text[]) OR ((state = $4) AND (coalesce(name, run_id) ~ $5))"
    assert args == [["a", "b"], "finished", "^r"]
    assert translated({"$nor": [{"tags": "x"}]}) == ("NOT coalesce(((tags @> ARRAY[$3]::text[])), false)", ["x"])
    assert translated({"createdAt": {"$gt": "2026-12-01T09:00:00Z"}})[0] == "started_at > $3"


def test_a_state_written_as_the_graphql_enum_spells_it_finds_the_runs_stored_lower_case() -> None:
    # `state:` takes RUNNING; the same word in `filters` found no run, where "running" found 42.
    assert translated({"state": "RUNNING"}) == ("state = $3", ["running"])
    assert translated({"state": {"$in": ["Crashed", "FAILED"]}}) == ("state = ANY($3::text[])", [["crashed", "failed"]])
    assert translated({"state": {"$ne": "FINISHED"}}) == ("state IS DISTINCT FROM $3", ["finished"])
    assert translated({"state": {"$regex": "^RUN"}}) == ("state ~* $3", ["^RUN"])
    assert translated({"state": {"$exists": True}}) == ("state IS NOT NULL", [])
    assert translated({"group": "RUNNING"})[1] == ["RUNNING"]  # other columns keep their case


def test_a_time_without_a_zone_is_read_as_utc_as_w_and_b_reads_it() -> None:
    from datetime import UTC, datetime

    written = translated({"created_at": {"$gte": "2026-12-01T09:00:00"}})[1]
    assert written == [datetime(2026, 12, 1, 9, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("filters", "said"),
    [
        ({"colour": "red"}, "cannot be filtered by 'colour'"),
        ({"$xor": []}, "unknown runs filter operator"),
        ({"$and": "state"}, "non-empty list"),
        ({"config.lr": {"$near": 1}}, "unknown operator"),
        ({"config.lr": {"$gt": [1]}}, "compares with a number or a string"),
        ({"tags": {"$gt": "a"}}, "does not apply to tags"),
        ({"state": {"$in": list(range(101))}}, "list of 1 to 100"),
        ({"createdAt": {"$gt": "yesterday"}}, "ISO 8601"),
        ({"config.a..b": 1}, "not a key path"),
        ({"config.lr": {"$not": 1}}, r"\$not on 'config.lr' takes operators on it"),
        ({"config.lr": {"$not": {"lr": 1}}}, r"\$not on 'config.lr' takes operators on it"),
        ({"config.lr": {"$not": {"$not": {"$gt": 1}}}}, r"\$not on 'config.lr' takes operators on it"),
        ({"config.lr": {"$not": {"$near": 1}}}, "unknown operator"),
    ],
)
def test_a_filter_it_cannot_translate_is_refused_saying_what_to_write(filters: dict, said: str) -> None:
    with pytest.raises(InvalidInput, match=said):
        translated(filters)


def test_filters_are_bounded_in_depth_and_size() -> None:
    deep: dict = {"state": "finished"}
    for _ in range(10):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidInput, match="deeper"):
        translated(deep)
    with pytest.raises(InvalidInput, match="more than 100 conditions"):
        translated({"$or": [{"state": str(n)} for n in range(101)]})


def ordered(order: RunOrder) -> str:
    return order.page("run_id", "entity = $1 AND project = $2", ["e", "p"], after=None, limit=5)[0]


def test_orders_sort_by_a_column_or_a_bound_key_path_and_break_ties_by_run_id() -> None:
    assert order_by("-created_at") is None and order_by(None) is None  # the default, newest first
    by_acc = order_by("+summary_metrics.acc")
    assert by_acc is not None and by_acc.path == ["acc"]
    assert " ORDER BY (summary #> $3::text[]) ASC NULLS LAST, run_id ASC LIMIT $4" in ordered(by_acc)
    name = order_by("-display_name")
    assert name is not None and name.path is None
    assert " ORDER BY coalesce(name, run_id) DESC NULLS LAST, run_id DESC LIMIT $3" in ordered(name)
    with pytest.raises(InvalidInput, match="cannot be ordered"):
        order_by("config")


def test_a_filter_binding_more_values_than_a_statement_takes_is_refused() -> None:
    # 99 conditions of two $in lists on a nested summary key bound 39,602 values, over PostgreSQL's 32,767; an
    # $in on config or summary now binds its values as arrays, three parameters a list.
    leaf = {"summary_metrics.a.b": {"$in": list(range(100)), "$nin": list(range(100))}}
    assert len(translated({"$and": [leaf] * 99})[1]) == 99 * 2 * 2 * 3
    query = RunQuery(first_parameter=3)
    for n in range(30_000):
        query.bind(n)
    with pytest.raises(InvalidInput, match="compares with more than 30,000 values: use fewer"):
        query.bind(0)

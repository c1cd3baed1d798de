"""A batch is regrouped into few round trips, but never out of a stream's order where it matters."""

from __future__ import annotations

import pickle
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from modelreg.events.automations import AutomationFired, automation_stream
from modelreg.events.envelope import Actor, Envelope
from modelreg.projections.projection import CopyInto, Statement
from modelreg.projections.runtime import execution_plan
from modelreg.projections.triggers import TriggersProjection


def order_of(plan: list[tuple[str, list[tuple[object, ...]]]]) -> list[object]:
    return [args[0] for _, rows in plan for args in rows]


def test_statements_of_different_streams_share_round_trips() -> None:
    statements = [(f"s{i % 3}", Statement("INSERT a", (i,))) for i in range(9)]
    assert len(execution_plan(statements)) == 1


def test_a_whole_stream_statement_stays_between_what_came_before_and_after_it() -> None:
    statements = [
        ("m", Statement("LINK", ("link",), rows="versions")),
        ("m", Statement("ALIAS", ("alias",), rows="aliases")),
        ("m", Statement("UNLINK", ("unlink",))),
        ("m", Statement("ALIAS", ("alias again",), rows="aliases")),
    ]
    order = order_of(execution_plan(statements))
    assert order.index("unlink") > order.index("link")
    assert order.index("unlink") > order.index("alias")
    assert order.index("alias again") > order.index("unlink")


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["X", "Y", "Z"]), st.sampled_from(["", "r1", "r2"])),
        max_size=40,
    )
)
def test_any_two_statements_that_must_stay_ordered_do(steps: list[tuple[str, str, str]]) -> None:
    statements = [(stream, Statement(sql, (i,), rows=rows)) for i, (stream, sql, rows) in enumerate(steps)]
    position = {i: n for n, i in enumerate(order_of(execution_plan(statements)))}
    for i, (stream_i, _, rows_i) in enumerate(steps):
        for j in range(i + 1, len(steps)):
            stream_j, _, rows_j = steps[j]
            must_follow = stream_i == stream_j and (rows_i == rows_j or not rows_i or not rows_j)
            if must_follow:
                assert position[i] < position[j], (i, j, steps)


def test_rows_to_copy_in_are_planned_as_one_copy_per_round_whatever_their_streams() -> None:
    copy_in = CopyInto("audit_log", ("event_id", "stream_seq"))
    statements = [(f"s{i % 3}", Statement(copy_in, (i, i // 3))) for i in range(9)]

    ((sql, rows),) = execution_plan(statements)

    assert isinstance(sql, CopyInto) and (sql.table, sql.columns) == ("audit_log", ("event_id", "stream_seq"))
    assert [args[0] for args in rows] == list(range(9))
    # Pickled and copied like any other statement (a str subclass with arguments of its own is not, by default).
    assert pickle.loads(pickle.dumps(statements)) == statements
    assert isinstance(pickle.loads(pickle.dumps(copy_in)), CopyInto)


def test_a_batch_of_one_automations_closed_firings_is_written_in_one_round_trip_and_wakes_the_runner_once() -> None:
    automation_id = uuid4()
    closed = [
        Envelope.new(
            AutomationFired(
                automation_id=automation_id,
                event_id=uuid4(),
                event_type="runs.run_finished",
                outcome="delivered",
                scope="entity:acme",
            ),
            stream=automation_stream(automation_id),
            actor=Actor(kind="automation", id=str(automation_id)),
        )
        for _ in range(20)
    ]

    plan = execution_plan(TriggersProjection().batch_statements(closed))

    assert [len(rows) for _, rows in plan] == [20, 1]  # the closes in one executemany, then one NOTIFY
    assert "pg_notify" in str(plan[1][0])

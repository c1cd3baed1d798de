"""Schemathesis against a running modelreg: queries and mutations generated from the GraphQL schema (its
introspection), sent with one API key; what came back is counted. Used by tests/e2e/test_graphql_fuzzing.py
(a few hundred cases) and bench/chaos.py (thousands)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import hypothesis
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

import graphql

REQUEST_TIMEOUT_S = 30


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # reproducers: operation, status, body sent, answer
    durations_s: list[float] = field(default_factory=list)

    def record(self, operation: str, body: object, status: int, answer: str, duration_s: float) -> None:
        self.cases += 1
        self.statuses[status] += 1
        self.durations_s.append(duration_s)
        if status >= 500 or status < 0:
            self.server_errors.append(f"{operation} -> {status}: sent {body!r:.600}; answer {answer[:300]!r}")


def _object(fields: dict[str, graphql.ValueNode]) -> graphql.ObjectValueNode:
    return nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v) for k, v in fields.items()])


_JSON_LEAF = st.one_of(
    st.text().map(nodes.String),
    st.integers(-(2**70), 2**70).map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.booleans().map(nodes.Boolean),
    st.just(nodes.Null),
)
# GenericScalar holds JSON (config, metadata, summaries, triggers): any nesting of any value.
_GENERIC = st.recursive(
    _JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(nodes.List),
        st.dictionaries(st.text(max_size=12), inner, max_size=4).map(_object),
    ),
    max_leaves=12,
)
_DATETIME = st.one_of(st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat), st.text())
_DATETIME_NODE = _DATETIME.map(nodes.String)
_BIGINT = st.integers(-(2**80), 2**80).map(nodes.Int)
# Numbers holds a series' steps or values: arrays of numbers, and now and then anything else JSON.
_NUMBER = st.one_of(
    st.integers(-(2**70), 2**70).map(nodes.Int), st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float)
)
_NUMBERS = st.one_of(st.lists(_NUMBER, max_size=8).map(nodes.List), _GENERIC)


def _register_scalars() -> None:
    schemathesis.graphql.scalar("GenericScalar", _GENERIC)
    schemathesis.graphql.scalar("DateTime", _DATETIME_NODE)
    schemathesis.graphql.scalar("BigInt", _BIGINT)
    schemathesis.graphql.scalar("Numbers", _NUMBERS)


def fuzz_graphql(url: str, api_key: str, cases: int, *, seed: int | None = None) -> FuzzReport:
    """Send `cases` generated operations to the GraphQL endpoint at `url`. Without a seed the cases are the
    same on every run (derandomized); blocking (requests): call it from a thread in async code."""
    _register_scalars()
    headers = {"Authorization": f"Bearer {api_key}"}
    schema = schemathesis.graphql.from_url(url, headers=headers, timeout=REQUEST_TIMEOUT_S)
    report = FuzzReport()
    session = requests.Session()

    @hypothesis.settings(
        max_examples=cases,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.generate],  # no shrinking: every case is sent once and counted
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=schema.as_strategy())
    def send(case: schemathesis.Case) -> None:
        started = time.perf_counter()
        try:
            response = case.call(session=session, headers=headers, timeout=REQUEST_TIMEOUT_S)
            status, answer = response.status_code, response.text
        except requests.RequestException as exc:  # a timeout or a dropped connection is a server error too
            status, answer = -1, f"{type(exc).__name__}: {exc}"
        report.record(case.operation.label, case.body, status, answer, time.perf_counter() - started)

    if seed is not None:
        send = hypothesis.seed(seed)(send)
    send()
    return report

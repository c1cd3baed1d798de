"""A request's variables are counted before graphql-core coerces them one value at a time: refused past the limit,
and coerced in a worker thread, not on the event loop, when they hold many."""

from __future__ import annotations

import threading
from typing import Any

import graphene
import pytest
from graphql.execution.values import get_variable_values

from graphql import OperationDefinitionNode, parse
from modelreg.graphql.schema import build_schema
from modelreg.graphql.variables import (
    COERCED_ON_THE_LOOP,
    MAX_VALUES,
    CoercedVariables,
    VariableCoercion,
    VariablesRefused,
    values_to_coerce,
)

SCHEMA = build_schema().graphql_schema
WAITING_JOBS = "query($a: [String!]!) { waitingJobs(queues: $a, first: 1) { items { id } } }"
LOG_VERSION = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"
LOG_BATCH = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
START_RUN = "mutation($i: StartRunInput!) { startRun(input: $i) { id } }"
DIGEST = "sha256:" + "ab" * 32


def _operation(query: str) -> OperationDefinitionNode:
    (operation,) = parse(query).definitions
    assert isinstance(operation, OperationDefinitionNode)
    return operation


def _manifest(files: int) -> dict[str, Any]:
    entries = [
        {"path": f"shards/{n:06}.bin", "size": n, "digest": DIGEST, "ref": f"s3://b/{n:06}"} for n in range(files)
    ]
    return {"i": {"entity": "acme", "project": "nature", "name": "shards", "type": "dataset", "files": entries}}


async def test_a_read_query_with_a_list_of_700_000_strings_is_refused_naming_the_limit() -> None:
    with pytest.raises(VariablesRefused) as refused:
        await VariableCoercion(SCHEMA).ready(_operation(WAITING_JOBS), {"a": [f"q{n}" for n in range(700_000)]})
    (error,) = refused.value.errors
    assert f"the variables hold over {MAX_VALUES:,} values" in error.message and "send fewer at once" in error.message
    assert error.extensions == {"code": "INVALID_INPUT", "retriable": False}


def test_a_list_is_counted_by_its_length_without_its_items_being_read_past_the_limit() -> None:
    huge = {"a": [f"q{n}" for n in range(700_000)]}
    assert values_to_coerce(SCHEMA, _operation(WAITING_JOBS), huge, COERCED_ON_THE_LOOP) == 700_001
    assert values_to_coerce(SCHEMA, _operation(WAITING_JOBS), {"a": ["gpu", "cpu"]}, COERCED_ON_THE_LOOP) == 3


def test_a_manifest_as_big_as_the_default_body_limit_is_within_the_limit() -> None:
    manifest = _manifest(80_000)  # about 8 MiB as JSON
    assert values_to_coerce(SCHEMA, _operation(LOG_VERSION), manifest, MAX_VALUES) == 1 + 5 + 80_000 * 5


async def test_a_manifest_of_thousands_of_references_is_coerced_as_graphql_core_would() -> None:
    manifest, operation = _manifest(5_000), _operation(LOG_VERSION)
    coerced = await VariableCoercion(SCHEMA).ready(operation, manifest)
    assert isinstance(coerced, CoercedVariables)
    assert coerced == get_variable_values(SCHEMA, operation.variable_definitions, manifest)


async def test_a_metric_batch_and_a_config_count_their_numbers_and_json_as_one_value_each() -> None:
    batch = {"entity": "acme", "project": "nature", "runId": "train-1"}
    series = {"i": batch | {"series": [{"key": "loss", "firstStep": 0, "values": [0.5] * 200_000}]}}
    config = {"i": {"entity": "acme", "project": "nature", "config": {"vocabulary": [f"t{n}" for n in range(200_000)]}}}
    assert values_to_coerce(SCHEMA, _operation(LOG_BATCH), series, MAX_VALUES) == 9
    assert values_to_coerce(SCHEMA, _operation(START_RUN), config, MAX_VALUES) == 4
    assert await VariableCoercion(SCHEMA).ready(_operation(START_RUN), config) is config  # few: execution coerces


async def test_a_value_its_type_refuses_among_many_is_refused_as_graphql_core_says() -> None:
    queues: list[Any] = [f"q{n}" for n in range(COERCED_ON_THE_LOOP * 2)]
    queues[1234] = 5
    with pytest.raises(VariablesRefused) as refused:
        await VariableCoercion(SCHEMA).ready(_operation(WAITING_JOBS), {"a": queues})
    (error,) = refused.value.errors
    assert (
        error.message == "Variable '$a' got invalid value 5 at 'a[1234]'; String cannot represent a non string value: 5"
    )


class _Noted(graphene.Scalar):
    """A scalar that notes the thread coercing it."""

    threads: set[int] = set()

    @staticmethod
    def serialize(value: Any) -> Any:
        return value

    @staticmethod
    def parse_value(value: Any) -> Any:
        _Noted.threads.add(threading.get_ident())
        return value


class _Query(graphene.ObjectType):
    echo = graphene.Int(values=graphene.List(graphene.NonNull(_Noted), required=True))


async def test_few_values_are_left_to_execution_and_many_are_coerced_off_the_event_loop() -> None:
    schema = graphene.Schema(query=_Query).graphql_schema
    coercion, operation = VariableCoercion(schema), _operation("query($v: [_Noted!]!) { echo(values: $v) }")

    few = {"v": list(range(COERCED_ON_THE_LOOP - 1))}
    assert await coercion.ready(operation, few) is few and not _Noted.threads

    many = await coercion.ready(operation, {"v": list(range(COERCED_ON_THE_LOOP + 1))})
    assert many == {"v": list(range(COERCED_ON_THE_LOOP + 1))}
    assert _Noted.threads and threading.get_ident() not in _Noted.threads

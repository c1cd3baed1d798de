"""Fuzzing with Schemathesis: operations generated from the schema, sent by a member, break nothing.

A bounded, derandomized number of cases here (seconds); bench/chaos.py sends thousands and times them."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from support.graphql_fuzzing import fuzz_graphql
from support.stack import Stack
from support.story import LOG_VERSION, version_input

CASES = 150


# Schemathesis's own strategies draw from `random` (its problem, not a finding about modelreg).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_operations_generated_from_the_schema_get_no_server_error_and_park_no_stream(stack: Stack) -> None:
    assert stack.client is not None
    member = await stack.key("user:mia", role="member")
    # Something to find, link and change besides what the fuzzer creates.
    await stack.graphql(LOG_VERSION, {"input": version_input("classifier", b"weights")}, key=member)

    report = await asyncio.to_thread(fuzz_graphql, str(stack.client.make_url("/graphql")), member, CASES)

    assert report.cases >= CASES // 2, report.statuses  # hypothesis may stop early, never at a handful
    assert report.server_errors == []
    await stack.projected()
    connection = await asyncpg.connect(stack.settings.database_url)
    try:
        parked = await connection.fetch("SELECT projection, stream, error FROM parked_streams")
    finally:
        await connection.close()
    assert [dict(r) for r in parked] == []

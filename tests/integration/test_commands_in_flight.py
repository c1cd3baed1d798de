"""Copies of one command are carried out one at a time across every API process: the claim on its key is a row
in PostgreSQL, which they share."""

from __future__ import annotations

from uuid import uuid4

import asyncpg

from modelreg.services.commands.in_flight import InFlightInPostgres


async def test_a_key_is_held_by_one_copy_until_it_lets_go(pool: asyncpg.Pool) -> None:
    one_api, another_api = InFlightInPostgres(pool), InFlightInPostgres(pool)
    key, first, second = uuid4(), uuid4(), uuid4()
    assert await one_api.claim(key, first)
    assert not await another_api.claim(key, second)
    await another_api.release(key, second)  # not its claim: changes nothing
    assert not await another_api.claim(key, second)
    await one_api.release(key, first)
    assert await another_api.claim(key, second)


async def test_the_claim_of_a_process_that_died_is_taken_over_once_it_is_no_longer_renewed(
    pool: asyncpg.Pool,
) -> None:
    in_flight = InFlightInPostgres(pool)
    key, killed, retry = uuid4(), uuid4(), uuid4()
    assert await in_flight.claim(key, killed)
    assert not await in_flight.claim(key, retry)
    await pool.execute("UPDATE commands_in_flight SET since = now() - interval '11 seconds' WHERE key = $1", key)
    assert await in_flight.claim(key, retry)
    await in_flight.release(key, killed)  # the killed copy's late release must not free the retry's claim
    assert await pool.fetchval("SELECT holder FROM commands_in_flight WHERE key = $1", key) == retry


async def test_a_holder_that_renews_its_claim_keeps_it(pool: asyncpg.Pool) -> None:
    in_flight = InFlightInPostgres(pool)
    key, slow, retry = uuid4(), uuid4(), uuid4()
    assert await in_flight.claim(key, slow)
    await pool.execute("UPDATE commands_in_flight SET since = now() - interval '11 seconds' WHERE key = $1", key)
    await in_flight.renew(key, slow)  # still at work: a long wait for the read models
    assert not await in_flight.claim(key, retry)

"""Copies of one command are carried out one at a time across every API process: the claim on its key is a row
in PostgreSQL, which they share."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg

from modelreg.services.commands.in_flight import InFlightInPostgres


async def test_a_key_is_held_by_one_copy_until_it_lets_go(pool: asyncpg.Pool) -> None:
    one_api, another_api = InFlightInPostgres(pool), InFlightInPostgres(pool)
    key, first, second = uuid4(), uuid4(), uuid4()
    assert await one_api.claim([key], first) == set()
    assert await another_api.claim([key], second) == {key}
    await another_api.release([key], second)  # not its claim: changes nothing
    assert await another_api.claim([key], second) == {key}
    await one_api.release([key], first)
    assert await another_api.claim([key], second) == set()


async def test_a_command_holds_all_its_keys_or_none(pool: asyncpg.Pool) -> None:
    # A link sent with a key claims its copies' key and its version's turn; holding the one while it waits for the
    # other, it could wait on a command that waits on it.
    in_flight = InFlightInPostgres(pool)
    copy, turn, link, alias = uuid4(), uuid4(), uuid4(), uuid4()
    assert await in_flight.claim([turn], alias) == set()
    assert await in_flight.claim([copy, turn], link) == {turn}
    assert await pool.fetchval("SELECT count(*) FROM commands_in_flight WHERE holder = $1", link) == 0
    await in_flight.release([turn], alias)
    assert await in_flight.claim([copy, turn], link) == set()
    await in_flight.release([copy, turn], link)
    assert await pool.fetchval("SELECT count(*) FROM commands_in_flight WHERE key = ANY($1)", [copy, turn]) == 0


async def test_commands_claiming_the_same_keys_at_once_never_wait_on_each_other(pool: asyncpg.Pool) -> None:
    in_flight = InFlightInPostgres(pool)
    keys = [uuid4() for _ in range(4)]
    holders = [uuid4() for _ in range(16)]
    # Each asks for the keys in another order; a deadlock would fail one of them with an error.
    answers = await asyncio.gather(*(in_flight.claim(keys[n % 4 :] + keys[: n % 4], h) for n, h in enumerate(holders)))
    winners = [h for h, busy in zip(holders, answers, strict=True) if not busy]
    assert len(winners) == 1
    assert await pool.fetchval("SELECT count(*) FROM commands_in_flight WHERE holder = $1", winners[0]) == 4


async def test_the_claim_of_a_process_that_died_is_taken_over_once_it_is_no_longer_renewed(
    pool: asyncpg.Pool,
) -> None:
    in_flight = InFlightInPostgres(pool)
    key, killed, retry = uuid4(), uuid4(), uuid4()
    assert await in_flight.claim([key], killed) == set()
    assert await in_flight.claim([key], retry) == {key}
    await pool.execute("UPDATE commands_in_flight SET since = now() - interval '11 seconds' WHERE key = $1", key)
    assert await in_flight.claim([key], retry) == set()
    await in_flight.release([key], killed)  # the killed copy's late release must not free the retry's claim
    assert await pool.fetchval("SELECT holder FROM commands_in_flight WHERE key = $1", key) == retry


async def test_a_holder_that_renews_its_claim_keeps_it(pool: asyncpg.Pool) -> None:
    in_flight = InFlightInPostgres(pool)
    key, slow, retry = uuid4(), uuid4(), uuid4()
    assert await in_flight.claim([key], slow) == set()
    await pool.execute("UPDATE commands_in_flight SET since = now() - interval '11 seconds' WHERE key = $1", key)
    await in_flight.renew([key], slow)  # still at work: a long wait for the read models
    assert await in_flight.claim([key], retry) == {key}


async def test_a_process_takes_back_a_claim_it_has_not_let_go_of_yet(pool: asyncpg.Pool) -> None:
    # Claims are held per API process, whose commands on one key already queue on a lock of its own.
    in_flight = InFlightInPostgres(pool)
    key, this_api, another_api = uuid4(), uuid4(), uuid4()
    assert await in_flight.claim([key], this_api) == set()
    assert await in_flight.claim([key], this_api) == set()
    assert await in_flight.claim([key, uuid4()], this_api) == set()
    assert await in_flight.claim([key], another_api) == {key}
    await in_flight.release([key], this_api)
    assert await in_flight.claim([key], another_api) == set()

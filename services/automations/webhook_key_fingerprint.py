"""One webhook key per installation: a process holding one compares it at its start with the key of the API.

Every webhook's secret derives from the key (webhook_signing.py): an API shows it when the automation is created,
`modelreg triggers` recomputes it for each delivery. Started with a key other than the API's, the triggers process
signed every delivery with a secret its receiver never got: each came back 401, and nothing said why. So an API (or
`modelreg server`) records a fingerprint of its key in PostgreSQL the first time (an HMAC of a fixed label: it tells
keys apart, and gives away less of the key than each receiver's secret does), and a process whose key differs from
the one recorded refuses to start, saying which key to fix. A process without a key signs nothing and compares
nothing (its webhook firings wait, pending). A key changed on purpose is recorded by one API started with
MODELREG_REPLACE_WEBHOOK_KEY=1 (docs/operations.md, "Changing the webhook key").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
from datetime import datetime

import asyncpg

from modelreg.projections.migrations import Migration

log = logging.getLogger(__name__)

MIGRATIONS = (
    Migration(
        "webhook_key",
        1,
        """
        CREATE TABLE webhook_key_fingerprint (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            fingerprint text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            -- The host of the API that recorded it: where to look when keys differ.
            recorded_on text NOT NULL
        );
        """,
    ),
)

# Never changed: a fingerprint recorded by one release is compared by the next.
_LABEL = b"modelreg webhook key fingerprint"


def fingerprint(key: str) -> str:
    return hmac.new(key.encode(), _LABEL, hashlib.sha256).hexdigest()


class WebhookKeysDiffer(RuntimeError):
    """This process's webhook key is not the one the installation's API recorded: a setting to check."""


async def check_webhook_key(pool: asyncpg.Pool, key: str | None, *, records: bool, replaces: bool = False) -> None:
    """Compare `key` with the installation's. `records`: this is an API (its key is the installation's), which records
    its key's fingerprint when none is yet, and with `replaces` over one that differs (a key changed on purpose)."""
    if key is None:
        return
    mine = fingerprint(key)
    if records:
        await pool.execute(
            "INSERT INTO webhook_key_fingerprint (fingerprint, recorded_on) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            mine,
            socket.gethostname(),
        )
    row = await pool.fetchrow("SELECT fingerprint, recorded_at, recorded_on FROM webhook_key_fingerprint")
    if row is None or hmac.compare_digest(row["fingerprint"], mine):
        return  # none recorded yet (no API with a key has started since the upgrade that brought this): as before
    recorded = (
        f"its fingerprint recorded in PostgreSQL by an API on {row['recorded_on']} at {_when(row['recorded_at'])}"
    )
    if records and replaces:
        await pool.execute(
            "UPDATE webhook_key_fingerprint SET fingerprint = $1, recorded_at = now(), recorded_on = $2",
            mine,
            socket.gethostname(),
        )
        log.warning(
            "the installation's webhook key is now this API's (MODELREG_REPLACE_WEBHOOK_KEY=1; the one before had %s): "
            "every webhook's secret changed with it, so its receiver refuses its deliveries until given the new one "
            "(create the automation again); start the other APIs and `modelreg triggers` with the new key",
            recorded,
        )
        return
    if records:
        raise WebhookKeysDiffer(
            "this API's webhook key (MODELREG_WEBHOOK_SECRET_KEY; `modelreg server`: <data-dir>/webhook-secret-key) "
            f"differs from the installation's ({recorded}), from which every webhook's secret was made: start it with "
            "that key, as the other APIs and `modelreg triggers` have it; to change the installation's key on purpose, "
            "start one API with MODELREG_REPLACE_WEBHOOK_KEY=1 (docs/operations.md)"
        )
    raise WebhookKeysDiffer(
        "this process's webhook key (MODELREG_WEBHOOK_SECRET_KEY) differs from the API's "
        f"({recorded}): it would sign every webhook delivery with a secret its receiver never got (401). Start it "
        "with the API's key (or, if the API's is the wrong one, see docs/operations.md, \"Changing the webhook key\")"
    )


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()

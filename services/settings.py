"""Where the real parts are: one frozen value, built by the CLI from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# What a process does when its Kafka topic does not exist (docs/operations.md, "The event log's topic").
MissingTopic = Literal["create", "wait", "refuse"]


@dataclass(frozen=True)
class Settings:
    database_url: str
    # None: the event log lives in Postgres, in the read models' database (one machine, no Kafka).
    kafka_bootstrap_servers: str | None = None
    topic: str = "modelreg.events"
    partitions: int = 6
    # A topic that does not exist is created ("create": the processes that take the first commands, `server` and
    # `api`, and `import`), waited for like a broker that does not answer yet ("wait": projectors and triggers,
    # started beside the first API), or refused ("refuse": tools that only read it). Every command created it: a
    # mistyped name made an empty topic, which `export` then wrote out as a log of 0 events, exit 0.
    missing_topic: MissingTopic = "refuse"
    # This process's name in Kafka's consumer groups (static membership): a restarted process with the same
    # name takes its partitions back at once instead of after the session timeout. Unique per process, stable
    # across its restarts (a StatefulSet pod's name); None: a new member at every start (docs/scaling.md).
    kafka_instance_id: str | None = None
    read_your_writes_timeout_s: float = 5.0
    # Where artifact files are kept (content-addressed); None: `blobs` under the current folder.
    blob_dir: Path | None = None
    # Or a URL (services/infra/blob_store_url.py): s3://bucket/prefix?endpoint=... keeps them in object storage.
    blob_store: str | None = None
    # Signs webhook deliveries (each webhook's secret derives from it); None: webhooks are refused.
    webhook_secret_key: str | None = None
    # An API's key is the installation's (the secrets it shows derive from it): it records the key's fingerprint the
    # first time, which every other process holding a key compares its own with at its start; with
    # `replace_webhook_key` (MODELREG_REPLACE_WEBHOOK_KEY=1), over one that differs: the key changed on purpose.
    records_webhook_key: bool = False
    replace_webhook_key: bool = False
    # An agent silent for this long has vanished: its jobs are requeued.
    agent_timeout_s: float = 30.0
    # A running run whose client beats, silent (no heartbeat, no metrics) for this long, is marked crashed.
    run_crashed_after_s: float = 900.0
    # Work is bounded before it is done: a request body over this is refused with 413 before it is read.
    # 8 MiB holds a manifest of about 60,000 files; a GraphQL document itself is bounded by its tokens.
    max_body_bytes: int = 8 * 1024**2
    # An artifact file uploaded to the blob store may be this big (checkpoints are).
    max_blob_bytes: int = 64 * 1024**3
    # A request body arrives within this many seconds of its first read, plus one per 64 KiB that came (an artifact
    # file: each piece within it of the one before), or is refused with 408: a caller dripping a byte a second
    # held a connection and a handler for ever. A big answer must be taken as fast, or its connection is cut.
    body_read_timeout_s: float = 30.0
    # Requests one API process serves at once (the probes and websockets aside); over it, 503 and Retry-After.
    max_requests_in_flight: int = 1000
    # Answers being written that their callers have not taken hold at most this much together; past it, a read's
    # answer is refused with 503 and Retry-After (services/http/unread_answers.py).
    max_unread_answer_bytes: int = 1024**3
    # Connections one API process keeps open; past it, a new one is answered 503 and closed (services/http/
    # open_connections.py). None: half the file descriptors the process may open, at most 10,000.
    max_connections: int | None = None
    # Websockets one principal (admins too) keeps open on one API process; past it, a socket is closed at
    # connection_init (services/http/sockets_per_principal.py). Its subscriptions are bounded by events/tail.py.
    max_sockets_per_principal: int = 32
    # Shows /metrics, and /healthz's and /readyz's figures and error texts, to a request bearing it (Prometheus'
    # credentials); an admin key sees them too. None: the admin key only. Without either: liveness and status.
    metrics_token: str | None = None

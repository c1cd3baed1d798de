"""modelreg: an event-sourced model registry. This package root is what training code imports.

    import modelreg
    with modelreg.init(project="nature", config={"lr": 0.01}) as run:
        data = run.use_artifact("nature-images:latest").download()
        run.log({"loss": 0.3})
        model = modelreg.Artifact("classifier", "model")
        model.add_file("model.pt")
        run.log_artifact(model)
        run.link_artifact(model, "nature-classification", aliases=["staging"])

With no server at hand, `modelreg.init(..., mode="offline")` (or MODELREG_MODE=offline) records the run
in ./modelreg-offline/, and `modelreg sync` uploads it later.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

from modelreg.api import Api
from modelreg.artifact import Artifact, ArtifactFile, LoggedArtifact
from modelreg.errors import InvalidInput, ModelregError, Unavailable
from modelreg.offline_run import OfflineRun
from modelreg.run import Run, start_fields
from modelreg.transport import Transport

__version__ = "0.1.0"
__all__ = ["Api", "Artifact", "ArtifactFile", "LoggedArtifact", "ModelregError", "OfflineFallback", "Run", "init"]

Mode = Literal["online", "offline", "auto"]
MODES = ("online", "offline", "auto")


class OfflineFallback(UserWarning):
    """mode="auto" found no server and recorded the run offline instead."""


def init(
    project: str,
    entity: str | None = None,
    config: dict[str, Any] | None = None,
    job_type: str | None = None,
    name: str | None = None,
    id: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    mode: Mode | None = None,
    offline_dir: str | Path | None = None,
) -> Run:
    """Start a run on the server at `url` (else MODELREG_URL, else the `modelreg login` settings), as the
    holder of `api_key` (same order, MODELREG_API_KEY).

    `mode` (else MODELREG_MODE, else "online"): "offline" records the run in `offline_dir` (else
    MODELREG_OFFLINE_DIR, else ./modelreg-offline) for `modelreg sync`; "auto" goes online when the
    server answers and offline, with an OfflineFallback warning, when it does not.
    """
    entity = entity or os.environ.get("MODELREG_ENTITY") or "default"
    chosen = mode or os.environ.get("MODELREG_MODE") or "online"
    if chosen not in MODES:
        raise InvalidInput(f"mode {chosen!r} is not one of {', '.join(MODES)} (check MODELREG_MODE)")
    options: dict[str, Any] = {
        "project": project,
        "entity": entity,
        "config": config,
        "job_type": job_type,
        "name": name,
        "run_id": id,
    }
    if chosen == "offline":
        return OfflineRun.start_offline(offline_dir, **options)
    transport = Transport(url, api_key)
    if chosen == "online":
        return Run.start(transport, **options)
    fields = start_fields(**options)
    try:
        return Run.start_with(transport, fields)
    except Unavailable as exc:
        transport.close()
        warnings.warn(
            f"modelreg: {exc.message}. Recording this run offline instead; upload it later with `modelreg sync`.",
            OfflineFallback,
            stacklevel=2,
        )
        return OfflineRun.start_offline(offline_dir, **options, fields=fields)

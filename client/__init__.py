"""modelreg: an event-sourced model registry. This package root is what training code imports.

    import modelreg
    with modelreg.init(project="nature", config={"lr": 0.01}) as run:
        data = run.use_artifact("nature-images:latest").download()
        run.log({"loss": 0.3})
        model = modelreg.Artifact("classifier", "model")
        model.add_file("model.pt")
        run.log_artifact(model)
        run.link_artifact(model, "nature-classification", aliases=["staging"])
"""

from __future__ import annotations

import os
from typing import Any

from modelreg.api import Api
from modelreg.artifact import Artifact, ArtifactFile, LoggedArtifact
from modelreg.errors import ModelregError
from modelreg.run import Run
from modelreg.transport import Transport

__version__ = "0.1.0"
__all__ = ["Api", "Artifact", "ArtifactFile", "LoggedArtifact", "ModelregError", "Run", "init"]


def init(
    project: str,
    entity: str | None = None,
    config: dict[str, Any] | None = None,
    job_type: str | None = None,
    name: str | None = None,
    id: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
) -> Run:
    """Start a run on the server at `url` (or MODELREG_URL), as the holder of `api_key` (or MODELREG_API_KEY)."""
    entity = entity or os.environ.get("MODELREG_ENTITY") or "default"
    return Run.start(Transport(url, api_key), project=project, entity=entity, config=config, job_type=job_type, name=name, run_id=id)

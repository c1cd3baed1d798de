"""modelreg: an event-sourced model registry. This package root is what training code imports.

    import modelreg
    with modelreg.init(project="nature", config={"lr": 0.01}) as run:
        data = run.use_artifact("nature-images:latest").download()
        run.log({"loss": 0.3})
        model = modelreg.Artifact("classifier", "model")
        model.add_file("model.pt")
        run.log_artifact(model)
        run.link_artifact(model, "nature-classification", aliases=["staging"])

A W&B script runs with `import modelreg as wandb`: the module-level API is W&B's (`wandb.init`, `wandb.log`,
`wandb.config`, `wandb.summary`, `wandb.run`, `wandb.finish`, `wandb.Api`...); docs/wandb-compat.md lists
every call and how far it goes.

With no server at hand, `modelreg.init(..., mode="offline")` (or MODELREG_MODE=offline) records the run
in ./modelreg-offline/, and `modelreg sync` uploads it later.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from modelreg.api import Api
from modelreg.artifact import Artifact, ArtifactEntry, ArtifactFile, LoggedArtifact
from modelreg.errors import CommError, Error, InvalidInput, ModelregError, Unavailable
from modelreg.ignored import IgnoredByModelreg, Settings, ignored_callable
from modelreg.offline_run import OfflineRun
from modelreg.public_run import PublicRun
from modelreg.run import AlertLevel, Run, generate_id
from modelreg.session import (
    BEFORE_INIT,
    OfflineFallback,
    alert,
    define_metric,
    finish,
    init,
    link_artifact,
    link_model,
    log,
    log_artifact,
    log_model,
    login,
    restore,
    save,
    use_artifact,
    use_model,
)
from modelreg.terminal import termerror, termlog, termwarn

__version__ = "0.1.0"
__all__ = [
    "AlertLevel",
    "Api",
    "Artifact",
    "ArtifactEntry",
    "ArtifactFile",
    "CommError",
    "Error",
    "IgnoredByModelreg",
    "InvalidInput",
    "LoggedArtifact",
    "ModelregError",
    "OfflineFallback",
    "OfflineRun",
    "PublicRun",
    "Run",
    "Settings",
    "Unavailable",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "link_artifact",
    "link_model",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "restore",
    "run",
    "save",
    "summary",
    "termerror",
    "termlog",
    "termwarn",
    "use_artifact",
    "use_model",
]

# The current run and its config and summary (modelreg.session keeps them up to date). `run` here is the
# current run, not the modelreg.run module (import that by name: `from modelreg.run import Run`).
run: Run | None = None
config: Any = BEFORE_INIT
summary: Any = BEFORE_INIT

# W&B names with no meaning here: they do nothing, with a one-time warning (modelreg.ignored).
_IGNORED = (
    "watch",
    "unwatch",
    "setup",
    "teardown",
    "require",
    "mark_preempting",
    "Image",
    "Table",
    "Histogram",
    "Audio",
    "Video",
    "Html",
    "Object3D",
    "Molecule",
    "plot_table",
    "plot",
    "sweep",
    "controller",
    "tensorboard",
)


# The one helper of W&B's `wandb.util` that scripts call (to make a run id they keep, for resume).
util = SimpleNamespace(generate_id=generate_id)


def agent(sweep_id: Any = None, function: Any = None, count: Any = None, **options: Any) -> None:
    """W&B's sweep agent runs `function` once per set of parameters its controller picks: modelreg has none."""
    raise InvalidInput(
        "modelreg runs no sweeps (wandb.agent): call your training function for each configuration yourself, "
        "e.g. in a loop over a parameter grid with modelreg.init(config=...) inside it"
    )


def __getattr__(name: str) -> Any:
    if name in _IGNORED:
        return ignored_callable(name)
    raise AttributeError(f"module 'modelreg' has no attribute {name!r}")

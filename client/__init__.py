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

import importlib
import sys
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from modelreg.before_init import BEFORE_INIT
from modelreg.errors import CommError, Error, InvalidInput, ModelregError, Unavailable
from modelreg.ignored import IgnoredByModelreg, Settings, ignored_callable
from modelreg.terminal import termerror, termlog, termwarn

if TYPE_CHECKING:
    from modelreg.api import Api
    from modelreg.artifact import Artifact, ArtifactEntry, ArtifactFile, LoggedArtifact
    from modelreg.offline_run import OfflineRun
    from modelreg.public_run import PublicRun
    from modelreg.run import AlertLevel, Run
    from modelreg.run import generate_id as generate_id
    from modelreg.session import (
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

    run: Run | None
    util: SimpleNamespace

# The training API is imported on first use, not with the package: the server's processes and the CLI import
# this package on their way to their own modules, and the HTTP client, tqdm and the run machinery were 0.1 s of
# CPU at the start of each (half of `modelreg --help`).
_LAZY_BY_MODULE = {
    "modelreg.api": ("Api",),
    "modelreg.artifact": ("Artifact", "ArtifactEntry", "ArtifactFile", "LoggedArtifact"),
    "modelreg.offline_run": ("OfflineRun",),
    "modelreg.public_run": ("PublicRun",),
    "modelreg.run": ("AlertLevel", "Run", "generate_id"),
    "modelreg.session": tuple(
        "OfflineFallback alert define_metric finish init link_artifact link_model log log_artifact log_model login "
        "restore save use_artifact use_model".split()
    ),
}
_LAZY = {name: module for module, names in _LAZY_BY_MODULE.items() for name in names}

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

# The current run's config and summary (modelreg.session keeps them up to date, and the current run, below).
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


def agent(sweep_id: Any = None, function: Any = None, count: Any = None, **options: Any) -> None:
    """W&B's sweep agent runs `function` once per set of parameters its controller picks: modelreg has none."""
    raise InvalidInput(
        "modelreg runs no sweeps (wandb.agent): call your training function for each configuration yourself, "
        "e.g. in a loop over a parameter grid with modelreg.init(config=...) inside it"
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        # Every name of that module at once: a script's `__del__` or atexit hook that calls `finish` after `init`
        # must not be the first to import anything, when the interpreter may already be tearing imports down.
        globals().update((other, getattr(module, other)) for other in _LAZY_BY_MODULE[_LAZY[name]])
        return globals()[name]
    if name == "util":
        # The one helper of W&B's `wandb.util` that scripts call (to make a run id they keep, for resume).
        globals()["util"] = SimpleNamespace(generate_id=__getattr__("generate_id"))
        return globals()["util"]
    if name in _IGNORED:
        return ignored_callable(name)
    if not name.startswith("__"):
        # A submodule (`modelreg.session`, `modelreg.transport`): reachable as an attribute, as when the package
        # imported them all.
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'modelreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "util"})


_current_run: Any = None


class _Package(ModuleType):
    """`modelreg.run` is the current run (modelreg.session sets it), not the module modelreg.run: a property,
    because importing that module, which now happens on first use, sets the package's attribute of its name."""

    @property
    def run(self) -> Any:
        return _current_run

    @run.setter
    def run(self, value: Any) -> None:
        global _current_run
        if not isinstance(value, ModuleType):  # the import system registering the submodule modelreg.run
            _current_run = value

    @run.deleter
    def run(self) -> None:
        """What `mock.patch("modelreg.run", ...)` does on exit: back to the session's current run."""
        global _current_run
        session = sys.modules.get(f"{__name__}.session")
        _current_run = session.current_run() if session is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by name, as cloudpickle pickles a plain module (joblib, Ray and dask send a script's functions
        with the modules they use), whose reducers go by the exact type and so miss this one."""
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package

"""`import modelreg` is cheap, and what a W&B script reaches through it is there on first use: the training API
is imported when a script first touches it, and `modelreg.run` stays the current run (None before `init`),
never the module of the same name, whatever imported that module first."""

from __future__ import annotations

import subprocess
import sys

import pytest

TRAINING_ONLY = ("httpx", "tqdm", "modelreg.run", "modelreg.session", "modelreg.artifact")


def probe(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", ["modelreg", "modelreg.services.cli", "modelreg.services.rebuild"])
def test_importing_the_package_or_a_server_process_loads_no_training_machinery(module: str) -> None:
    loaded = probe(f"import sys, {module}; print([m for m in {TRAINING_ONLY!r} if m in sys.modules])")
    assert loaded == "[]"


def test_the_training_api_is_there_on_first_use() -> None:
    code = (
        "import modelreg; "
        "print(modelreg.init.__module__, modelreg.Artifact.__module__, modelreg.Api.__module__, "
        "modelreg.util.generate_id.__module__, modelreg.AlertLevel.__name__, callable(modelreg.watch))"
    )
    assert probe(code) == "modelreg.session modelreg.artifact modelreg.api modelreg.run AlertLevel True"


@pytest.mark.parametrize(
    "first",
    [
        "modelreg.Run",  # the package imports the module modelreg.run itself
        "__import__('modelreg.run')",  # a script imports it by name
        "__import__('modelreg.session')",  # or a module that imports it
    ],
)
def test_modelreg_run_is_the_current_run_not_the_module_of_that_name(first: str) -> None:
    code = f"import modelreg; {first}; print(modelreg.run, repr(modelreg.config))"
    assert probe(code) == "None <before modelreg.init()>"


def test_star_import_and_dir_list_the_whole_api() -> None:
    code = (
        "import modelreg; ns = {}; exec('from modelreg import *', ns); "
        "missing = [n for n in modelreg.__all__ if n not in ns]; "
        "print(missing, ns['run'], sorted(set(modelreg.__all__) - set(dir(modelreg))))"
    )
    assert probe(code) == "[] None []"


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    assert probe("import modelreg; print(hasattr(modelreg, 'no_such_thing'))") == "False"


def test_a_submodule_is_an_attribute_as_when_the_package_imported_them_all() -> None:
    assert probe("import modelreg; print(modelreg.session.current_run(), modelreg.transport.__name__)") == (
        "None modelreg.transport"
    )


def test_touching_one_session_name_brings_its_siblings_for_a_hook_at_exit() -> None:
    # A `__del__` or atexit hook calling `finish` after `init` must not be the first to import anything.
    assert probe("import modelreg; modelreg.init; print(all(n in vars(modelreg) for n in ('finish', 'log')))") == "True"


def test_patching_the_current_run_in_a_test_restores_it() -> None:
    code = (
        "import modelreg; from unittest import mock\n"
        "with mock.patch.object(modelreg, 'run', 'fake'): inside = modelreg.run\n"
        "print(inside, modelreg.run)"
    )
    assert probe(code) == "fake None"


def test_the_package_pickles_by_name() -> None:
    assert probe("import pickle, modelreg; print(pickle.loads(pickle.dumps(modelreg)) is modelreg)") == "True"


def test_a_script_function_using_the_package_ships_to_a_process_pool() -> None:
    pytest.importorskip("cloudpickle")  # what joblib, Ray and dask pickle a script's functions with
    code = (
        "import cloudpickle, modelreg\n"
        "def train():\n    return modelreg.run\n"
        "print(cloudpickle.loads(cloudpickle.dumps(train))() is None)"
    )
    assert probe(code) == "True"

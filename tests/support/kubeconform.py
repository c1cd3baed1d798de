"""kubeconform (a Go tool) built once with `go install` from the Go module proxy and cached, and the Kubernetes
JSON schemas it checks against, taken offline from the kubernetes-validate wheel (PyPI).

Those schemas name themselves `https://kubernetes.io/api/...` and point at `/api/_definitions.json`, which
kubeconform would fetch over the network: the copies made here drop the `$id` and point at the definitions
file beside them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import platformdirs

KUBECONFORM_VERSION = "v0.8.0"
KUBERNETES_VERSION = "1.37.0"


def kubeconform() -> Path:
    cache = Path(platformdirs.user_cache_dir("modelreg")) / f"kubeconform-{KUBECONFORM_VERSION}"
    binary = cache / "kubeconform"
    if binary.exists():
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    subprocess.run(
        [go, "install", f"github.com/yannh/kubeconform/cmd/kubeconform@{KUBECONFORM_VERSION}"],
        check=True,
        env={**os.environ, "GOBIN": str(cache)},
        capture_output=True,
    )
    return binary


def offline_schemas(into: Path, kinds: list[str]) -> Path:
    """The schemas of `kinds` (file names such as deployment-apps-v1) and their definitions, made local."""
    import kubernetes_validate

    source = (
        Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
    )
    into.mkdir(parents=True, exist_ok=True)
    for name in ["_definitions", *kinds]:
        schema = json.loads((source / f"{name}.json").read_text())
        schema.pop("$id", None)
        text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        (into / f"{name}.json").write_text(text)
    return into

"""The code that pulls one exact version down, shown next to it (the demo's "usage" tab)."""

from __future__ import annotations

from typing import Any


def usage_snippet(
    version: dict[str, Any], registered_model: str | None = None, model_version: str | None = None
) -> str:
    """Python for training or serving code: by the immutable vN ref, never by a moving alias."""
    ref = f"{version['entity']}/{version['project']}/{version['name']}:v{version['version_index']}"
    about = f"{registered_model} {model_version} = {ref}" if registered_model else ref
    return (
        "import modelreg\n"
        "\n"
        f"# {about}\n"
        "# In a run (records this exact version as the run's input, for lineage):\n"
        f'with modelreg.init(project="{version["project"]}", job_type="inference") as run:\n'
        f'    artifact = run.use_artifact("{ref}")\n'
        "    path = artifact.download()\n"
        "\n"
        "# Outside a run (serving, notebooks):\n"
        f'path = modelreg.Api().artifact("{ref}").download()\n'
    )

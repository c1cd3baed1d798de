"""Templates of automations: "${artifact_ref}" in a job's config or a webhook's payload, filled from the event."""

from __future__ import annotations

import string
from typing import Any


def render(template: Any, variables: dict[str, Any]) -> Any:
    """Fill every string in a JSON-like value; a string that is exactly one variable keeps the value's type."""
    if isinstance(template, dict):
        return {key: render(value, variables) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, variables) for value in template]
    if isinstance(template, str):
        whole = template.strip()
        if whole.startswith("${") and whole.endswith("}") and whole[2:-1] in variables:
            return variables[whole[2:-1]]
        return string.Template(template).safe_substitute({k: str(v) for k, v in variables.items()})
    return template

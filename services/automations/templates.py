"""Templates of automations: "${artifact_ref}" in a job's config or a webhook's payload, filled from the event."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any


def template_variables(template: Any) -> set[str]:
    """The variables a JSON-like template names, "${name}" or "$name", in every string it holds."""
    if isinstance(template, dict):
        return {name for value in template.values() for name in template_variables(value)}
    if isinstance(template, list):
        return {name for value in template for name in template_variables(value)}
    if isinstance(template, str):
        return set(string.Template(template).get_identifiers())
    return set()


def action_templates(action: Mapping[str, Any]) -> list[Any]:
    """What of an automation's action is filled from the event: a launch's entity, project and config, a webhook's
    payload."""
    if action.get("kind") == "launch":
        return [action.get("entity"), action.get("project"), action.get("config") or {}]
    return [action.get("payload") or {}]


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

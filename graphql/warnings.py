"""One shape for what an answer warns of though its command was accepted (a typo maybe, what a revoked key left
behind): a list of sentences, empty when there is nothing to say."""

from __future__ import annotations

from typing import Any

import graphene


def warnings_field(description: str) -> graphene.List:
    return graphene.List(graphene.NonNull(graphene.String), required=True, description=description)


def given_warnings(row: dict[str, Any], info: graphene.ResolveInfo) -> list[str]:
    """The warnings the command's handler put in its answer's row; none when the row is read otherwise."""
    return list(row.get("warnings", ()))

"""Turns GraphQL input into validated commands."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

import graphene
from pydantic import BaseModel, ValidationError

from modelreg.errors import InvalidInput, validation_problems

M = TypeVar("M", bound=BaseModel)


def command_id_field() -> graphene.ID:
    """The `commandId` of a mutation's input: what makes resending it safe (services/commands/command_identity.py)."""
    return graphene.ID(
        description="a client's id for this command (UUID): sent again with the same input, it changes nothing and "
        "answers as the first did; sent with another input, it is refused (CONFLICT): a new command needs a new id"
    )


def parse_command(model: type[M], fields: dict[str, Any]) -> M:
    """Validate input into a command; a refusal names each bad field and what is wrong with it."""
    # GraphQL passes omitted optional fields as None; the command's own defaults apply instead.
    present = {k: _plain(v) for k, v in fields.items() if v is not None}
    try:
        return model.model_validate(present)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {model.__name__}: {validation_problems(exc)}") from None


def _plain(value: Any) -> Any:
    """Enum members as the values commands know ("finished", not FinishedRunState.FINISHED)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

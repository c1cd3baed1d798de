"""The root of every error modelreg raises, with machine-readable flags for callers and GraphQL."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is imported by whoever validates, not by every import of the client
    from pydantic import ValidationError


class ModelregError(Exception):
    code: str = "INTERNAL"
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retriable is not None:
            self.retriable = retriable


class InvalidInput(ModelregError):
    """The command is malformed: fix the input and send it again."""

    code = "INVALID_INPUT"


class CommError(ModelregError):
    """W&B's `wandb.errors.CommError`: what the server answered was not the thing asked for (missing, refused,
    unreachable). Scripts catch it around `Api().artifact(...)` to ask whether something exists."""


Error = ModelregError  # W&B's `wandb.Error` / `wandb.errors.Error`, the root of every error


class NotFound(CommError):
    code = "NOT_FOUND"


class FileNotInArtifact(NotFound, KeyError):
    """`artifact.get_entry(name)` of a file the version does not hold: W&B raises KeyError there, and scripts
    catch that."""

    def __str__(self) -> str:  # KeyError's would quote the message
        return self.message


class Conflict(ModelregError):
    """The command contradicts the current state (e.g. finishing a run twice)."""

    code = "CONFLICT"


class PermissionDenied(CommError):
    code = "FORBIDDEN"


class NotYetVisible(ModelregError):
    """The event was appended, but the read models had not caught up within the wait: query again shortly."""

    code = "NOT_YET_VISIBLE"
    retriable = True


class Unavailable(CommError):
    code = "UNAVAILABLE"
    retriable = True


# The shape of the names users type (entities, projects, artifacts, models, aliases: events/names.py): they travel
# in refs such as "entity/project/name:alias", so they may not contain / or :.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def not_a_name(value: object) -> str:
    return (
        f"{value!r} is not a name: a name starts with a letter or digit and holds only letters, digits, '.', '_' and "
        "'-' (no spaces, '/' or ':')"
    )


def validation_problems(refused: ValidationError) -> str:
    """Each bad field of a pydantic refusal and what is wrong with it: `project: String should match ...`."""
    said = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {_problem(err)}" for err in refused.errors())
    return said or str(refused)


def _problem(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        # pydantic's "String should match pattern '^[A-Za-z0-9]...'" left a user with a regular expression to read.
        pattern = (error.get("ctx") or {}).get("pattern", "")
        if pattern == NAME_PATTERN:
            return not_a_name(error["input"])
        shape = f"is not {_SHAPES[pattern]}" if pattern in _SHAPES else _word_shape(pattern)
        if shape:
            return f"{error['input']!r} {shape}"
    return str(error["msg"])


# What the other patterns of events/ and commands ask for, in words.
_SHAPES = {
    r"^[a-z0-9]{12}$": "an API key id: 12 lowercase letters or digits (what follows mr_ in the key)",
    r"^[0-9a-f]{7,40}$": "a git commit: 7 to 40 hexadecimal digits",
    r"^sha256:[0-9a-f]{64}$": "a digest: sha256: and 64 lowercase hexadecimal digits",
    r"^(file|https?|s3)://": "a reference: a URI starting with file://, http://, https:// or s3://",
    r"^https?://": "a URL starting with http:// or https://",
    r"^[a-z][a-z0-9_]*$": "a projection name: lowercase letters, digits and '_'",
    r"^(registry|model:[A-Za-z0-9][A-Za-z0-9._-]*|entity:[A-Za-z0-9][A-Za-z0-9._-]*)$": (
        "a scope: registry, model:NAME or entity:NAME"
    ),
    r"^(registry|(model|entity|queue):[A-Za-z0-9][A-Za-z0-9._-]*)$": (
        "a scope: registry, model:NAME, entity:NAME or queue:NAME"
    ),
    r"^(model|entity):[A-Za-z0-9][A-Za-z0-9._-]*$": "a scope that can be private: model:NAME or entity:NAME",
}
_WORD = re.compile(r"\^\[A-Za-z0-9\]\[A-Za-z0-9(?P<more>[^\]]*)-\]\*\$")


def _word_shape(pattern: str) -> str | None:
    """`^[A-Za-z0-9][A-Za-z0-9._:-]*$` (a tag's, an agent id's) in words."""
    found = _WORD.fullmatch(pattern)
    if found is None:
        return None
    allowed = ", ".join(f"'{c}'" for c in found["more"])
    return (
        f"is refused: it must start with a letter or digit and hold only letters, digits, {allowed} and '-' (no spaces)"
    )

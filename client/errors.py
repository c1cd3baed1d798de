"""The root of every error modelreg raises, with machine-readable flags for callers and GraphQL."""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is imported by whoever validates, not by every import of the client
    from pydantic import ValidationError


class ModelregError(Exception):
    code: str = "INTERNAL"
    retriable: bool = False
    path: tuple[str | int, ...] = ()  # the field of a GraphQL answer that failed, as the server names it

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retriable: bool | None = None,
        path: Iterable[str | int] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path)
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


class NotSupported(ModelregError, NotImplementedError):
    """A W&B call modelreg has no counterpart for (docs/wandb-compat.md, "Not yet"): the message says what to use
    instead. A NotImplementedError too, which scripts written for several backends catch."""

    code = "NOT_SUPPORTED"


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


# How much of a caller's value a message shows. A refusal repeated a 7 MB metric name whole: the answer was as big as
# the request, and the server logged it three times over.
SHOWN_CHARS = 100
# How many of a refusal's problems it lists (pydantic reports each bad entry of a list: a manifest, metric rows), and
# how much of each problem's own text: a validator quotes values with `quoted`, but pydantic's text (a union's tag
# it does not know) is not ours to check.
SHOWN_PROBLEMS = 10
SHOWN_PROBLEM_CHARS = 1_000
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = SHOWN_CHARS


def quoted(value: object) -> str:
    """A caller's value as a message quotes it: its repr, the first SHOWN_CHARS characters of a longer text followed
    by its length (`'aaa...' (7,000,000 characters)`), containers cut by reprlib."""
    if isinstance(value, str):
        return repr(value) if len(value) <= SHOWN_CHARS else f"{value[:SHOWN_CHARS]!r}... ({len(value):,} characters)"
    return _SHORT.repr(value)


def shortened(text: str, most: int = SHOWN_CHARS) -> str:
    """Text a message shows as it is (a place such as `rows.0.values.<key>`), cut the way `quoted` cuts."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text):,} characters)"


def listed(names: Iterable[str], most: int = 5) -> str:
    """The first few of a caller's names, each shortened, and how many more there are: `a, b and 3 more`."""
    names = list(names)
    more = f" and {len(names) - most:,} more" if len(names) > most else ""
    return ", ".join(shortened(name) for name in names[:most]) + more


def not_a_name(value: object) -> str:
    return (
        f"{quoted(value)} is not a name: a name starts with a letter or digit and holds only letters, digits, "
        "'.', '_' and '-' (no spaces, '/' or ':')"
    )


def validation_problems(refused: ValidationError) -> str:
    """Each bad field of a pydantic refusal and what is wrong with it: `project: String should match ...`."""
    problems = refused.errors()
    said = "; ".join(f"{_place(err['loc'])}: {_problem(err)}" for err in problems[:SHOWN_PROBLEMS])
    if len(problems) > SHOWN_PROBLEMS:
        said += f"; and {len(problems) - SHOWN_PROBLEMS:,} more problems like these"
    return said or str(refused)


def _place(loc: tuple[int | str, ...]) -> str:
    """Where a problem is: field names, list indexes and the keys of the caller's own dicts (shortened)."""
    return ".".join(shortened(str(part)) for part in loc) or "input"


def _problem(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch":
        # pydantic's "String should match pattern '^[A-Za-z0-9]...'" left a user with a regular expression to read.
        pattern = (error.get("ctx") or {}).get("pattern", "")
        if pattern == NAME_PATTERN:
            return not_a_name(error["input"])
        shape = f"is not {_SHAPES[pattern]}" if pattern in _SHAPES else _word_shape(pattern)
        if shape:
            return f"{quoted(error['input'])} {shape}"
    return shortened(str(error["msg"]), SHOWN_PROBLEM_CHARS)


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

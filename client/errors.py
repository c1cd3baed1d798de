"""The root of every error modelreg raises, with machine-readable flags for callers and GraphQL."""

from __future__ import annotations


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


class NotFound(ModelregError):
    code = "NOT_FOUND"


class Conflict(ModelregError):
    """The command contradicts the current state (e.g. finishing a run twice)."""

    code = "CONFLICT"


class PermissionDenied(ModelregError):
    code = "FORBIDDEN"


class NotYetVisible(ModelregError):
    """The event was appended, but the read models had not caught up within the wait: query again shortly."""

    code = "NOT_YET_VISIBLE"
    retriable = True


class Unavailable(ModelregError):
    code = "UNAVAILABLE"
    retriable = True

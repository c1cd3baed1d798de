"""The shapes of names users type: entities, projects, artifacts, registered models, aliases."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from modelreg.errors import NAME_PATTERN, quoted

# Names travel in refs such as "entity/project/name:alias", so they may not contain / or :.
_NAME = NAME_PATTERN

EntityName = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=64)]
ProjectName = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=128)]
ArtifactName = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=128)]
ArtifactType = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=64)]
RegisteredModelName = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=128)]
RunId = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=64)]

_DIGITS = re.compile(r"[0-9]+")


def count_in(text: str, digits: int = 9) -> int | None:
    """`text` as a count of at most `digits` ASCII digits (9 fit PostgreSQL's integer), else None. Not
    `str.isdigit`, which takes "²" and other digits `int` refuses."""
    return int(text) if len(text) <= digits and _DIGITS.fullmatch(text) else None


# `v3` and `latest` are computed by the registry; users may not claim them as alias names.


def _not_computed(alias: str) -> str:
    if alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise ValueError(f"{quoted(alias)} is computed by the registry and cannot be set as an alias")
    return alias


AliasName = Annotated[str, StringConstraints(pattern=_NAME, min_length=1, max_length=64), AfterValidator(_not_computed)]
# The aliases one command may set or remove. Each alias linked is an event of its own that every projection applies:
# 90,000 in one link held every projection of a server back for 40 s. A W&B script sets a handful.
Aliases = Annotated[tuple[AliasName, ...], Field(max_length=100)]
TagName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", min_length=1, max_length=64)]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Description = Annotated[str, Field(max_length=100_000)]

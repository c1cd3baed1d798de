"""Free-form JSON arguments (a run's config, a version's metadata, a job's overrides).

graphene's GenericScalar turns an integer literal beyond 32 bits, and any variable inside a literal, into null
without a word: `startRun(input: {config: {seed: 3000000000}})` stored `{"seed": null}` on the log. This one keeps
what a variable would carry and refuses, with a message, what the log cannot hold, in literals and variables alike.
"""

from __future__ import annotations

import math
from typing import Any

from graphene.types.generic import GenericScalar
from graphql.language.ast import (
    BooleanValueNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)

from graphql import GraphQLError
from modelreg.errors import shortened

_INT64 = 2**63


class JSONValue(GenericScalar):
    """A string, number, boolean, null, list or object (the same GraphQL type as graphene's GenericScalar)."""

    class Meta:
        name = "GenericScalar"

    @staticmethod
    def parse_value(value: Any) -> Any:
        """A variable's value, held to what a literal may be: JSON reads 1e400 as infinity and keeps integers of any
        size, and the log cannot hold either (a filter failed inside the database, a config stored null)."""
        stack = [value]
        while stack:
            item = stack.pop()
            if type(item) is float and not math.isfinite(item):
                raise GraphQLError("a number is beyond a 64-bit float: send it as a string")
            if type(item) is int and not -_INT64 <= item < 2 * _INT64:  # the log's JSON holds unsigned 64 bits too
                raise GraphQLError(f"{shortened(str(item))} is beyond a 64-bit integer: send it as a string or a float")
            if type(item) is dict:
                stack.extend(item.values())
            elif type(item) is list:
                stack.extend(item)
        return value

    @staticmethod
    def parse_literal(ast: ValueNode, _variables: dict[str, Any] | None = None) -> Any:
        if isinstance(ast, StringValueNode | BooleanValueNode):
            return ast.value
        if isinstance(ast, IntValueNode):
            number = int(ast.value)
            if not -_INT64 <= number < _INT64:
                raise GraphQLError(f"{shortened(ast.value)} is beyond a 64-bit integer: send it as a string or a float")
            return number
        if isinstance(ast, FloatValueNode):
            real = float(ast.value)
            if not math.isfinite(real):
                raise GraphQLError(f"{shortened(ast.value)} is beyond a 64-bit float: send it as a string")
            return real
        if isinstance(ast, ListValueNode):
            return [JSONValue.parse_literal(value, _variables) for value in ast.values]
        if isinstance(ast, ObjectValueNode):
            return {field.name.value: JSONValue.parse_literal(field.value, _variables) for field in ast.fields}
        if isinstance(ast, VariableNode):
            return (_variables or {}).get(ast.name.value)
        if isinstance(ast, NullValueNode):
            return None
        raise GraphQLError(f"{type(ast).__name__} is not a JSON value")

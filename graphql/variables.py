"""A request's variables, counted before graphql-core coerces them, and coerced off the event loop when many.

graphql-core coerces a variable value by value, 7 to 9 µs each, wherever the operation is executed: on the
event loop, where /livez, every other request, the websockets and (in `modelreg server`) the projections waited
while a read-only key's list of 700,000 short strings (7.6 MB, under the 8 MiB body limit) took 5 s. The values
it would coerce one at a time (list items, input-object fields, each variable) are counted first, reading no
further than the limit: over MAX_VALUES the request is refused (INVALID_INPUT); over COERCED_ON_THE_LOOP they are
coerced in a worker thread, one request at a time, as new documents are validated (documents.py), and the
operation then runs with them as coerced. A JSON value (a config, a filter) and a series of numbers count one
each: their scalars take them whole, cheaply.
"""

from __future__ import annotations

import asyncio
from copy import copy
from itertools import repeat
from typing import Any

from graphql.execution import ExecutionContext
from graphql.execution.values import get_variable_values
from graphql.utilities import type_from_ast

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
)

# A manifest of 8 MiB, the default body limit, lists about 90,000 files of four fields each (the e2e stories log
# 40,000 references in one command): coerced, about 4 s of a worker thread.
MAX_VALUES = 500_000
# Under 10 ms on the loop; lists typed by hand (aliases, queues, event types) stay far under it.
COERCED_ON_THE_LOOP = 1_000


def values_to_coerce(
    schema: GraphQLSchema, operation: OperationDefinitionNode, variables: dict[str, Any], stop_after: int
) -> int:
    """How many values graphql-core would coerce one at a time for the operation, counted to just past
    `stop_after` at most: a list is counted by its length, and only lists and input objects are looked into."""
    count, pending = 0, []
    for definition in operation.variable_definitions or ():
        name, type_ = definition.variable.name.value, type_from_ast(schema, definition.type)
        if name in variables and type_ is not None:  # graphql-core coerces declared variables only
            count += 1
            if (inside := _composite(type_)) is not None:
                pending.append((variables[name], inside))
    composite_fields: dict[str, dict[str, _Composite]] = {}
    while pending and count <= stop_after:
        value, type_ = pending.pop()
        if isinstance(type_, GraphQLList):
            item_type = _composite(type_.of_type)
            if type(value) is not list:  # one value where a list is expected: coerced as a list of one
                if item_type is not None:
                    pending.append((value, item_type))
                continue
            count += len(value)
            if item_type is not None and count <= stop_after:
                pending.extend(zip(value, repeat(item_type)))
        elif type(value) is dict:
            count += len(value)
            if count <= stop_after:
                if (fields := composite_fields.get(type_.name)) is None:
                    fields = composite_fields[type_.name] = _composite_fields(type_)
                pending.extend((item, fields[key]) for key, item in value.items() if key in fields)
    return count


_Composite = GraphQLList | GraphQLInputObjectType


def _composite(type_: Any) -> _Composite | None:
    """The list or input object `type_` is (non-null or not); None for a scalar or an enum, coerced in one go."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return type_ if isinstance(type_, GraphQLList | GraphQLInputObjectType) else None


def _composite_fields(type_: GraphQLInputObjectType) -> dict[str, _Composite]:
    return {name: inside for name, field in type_.fields.items() if (inside := _composite(field.type)) is not None}


def too_many_values(limit: int, of_what: str, instead: str) -> GraphQLError:
    return GraphQLError(
        f"the variables hold over {limit:,} values (list items and input-object fields), this server's limit for "
        f"{of_what}: {instead}",
        extensions={"code": "INVALID_INPUT", "retriable": False},
    )


class CoercedVariables(dict[str, Any]):
    """Variables coerced already: ExecutionOfCoercedVariables runs an operation with them as they are."""


class ExecutionOfCoercedVariables(ExecutionContext):
    """graphql-core's execution, which coerces the variables it is given unless they are CoercedVariables."""

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | ExecutionContext:
        if not isinstance(raw_variable_values, CoercedVariables):
            return super().build(schema, document, root_value, context_value, raw_variable_values, *args, **kwargs)
        # Built from the document without its variable definitions, nothing is coerced; the context then holds
        # the coerced values, which is all execution reads of the variables.
        document = _without_variable_definitions(document)
        built = super().build(schema, document, root_value, context_value, None, *args, **kwargs)
        if isinstance(built, ExecutionContext):
            built.variable_values = dict(raw_variable_values)
        return built


def _without_variable_definitions(document: DocumentNode) -> DocumentNode:
    definitions = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            definition = copy(definition)
            definition.variable_definitions = ()
        definitions.append(definition)
    return DocumentNode(definitions=tuple(definitions), loc=document.loc)


class VariableCoercion:
    def __init__(self, schema: GraphQLSchema, max_values: int = MAX_VALUES) -> None:
        self._schema = schema
        self._max_values = max_values
        self._one_at_a_time = asyncio.Semaphore(1)

    async def ready(self, operation: OperationDefinitionNode, variables: dict[str, Any]) -> dict[str, Any]:
        """The variables to execute the operation with: as sent when they are few (execution coerces them), else
        CoercedVariables; GraphQLErrors (over the limit, or values their types refuse) are raised as a list."""
        if values_to_coerce(self._schema, operation, variables, COERCED_ON_THE_LOOP) <= COERCED_ON_THE_LOOP:
            return variables
        async with self._one_at_a_time:
            coerced = await asyncio.to_thread(self._coerced, operation, variables)
        if isinstance(coerced, list):
            raise VariablesRefused(coerced)
        return coerced

    def _coerced(
        self, operation: OperationDefinitionNode, variables: dict[str, Any]
    ) -> CoercedVariables | list[GraphQLError]:
        if values_to_coerce(self._schema, operation, variables, self._max_values) > self._max_values:
            return [too_many_values(self._max_values, "a request", "send fewer at once, over several requests")]
        coerced = get_variable_values(self._schema, operation.variable_definitions or (), variables)
        return coerced if isinstance(coerced, list) else CoercedVariables(coerced)


class VariablesRefused(Exception):
    """What graphql-core answers for variables it cannot coerce: the request's errors, no data."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(errors)
        self.errors = errors

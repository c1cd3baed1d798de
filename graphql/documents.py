"""Parsed and validated GraphQL documents, cached by their text.

Clients send the same few documents over and over; parsing and validating one costs about a millisecond
in graphql-core, which is a tenth of a command's budget. Only documents that passed validation are cached.
"""

from __future__ import annotations

from collections import OrderedDict

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules, validate
from graphql.validation import ASTValidationRule
from graphql_server.exceptions import GraphQLValidationError


class ValidatedDocuments:
    def __init__(self, schema: GraphQLSchema, extra_rules: tuple[type[ASTValidationRule], ...], size: int = 1000) -> None:
        self._schema = schema
        # Passing rules to validate() replaces the standard ones, so they are listed too.
        self._rules = (*specified_rules, *extra_rules)
        self._size = size
        self._cache: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: str) -> DocumentNode:
        document = self._cache.get(query)
        if document is not None:
            self._cache.move_to_end(query)
            return document
        try:
            document = parse(query)
        except GraphQLError as exc:
            raise GraphQLValidationError([exc]) from exc
        errors = validate(self._schema, document, self._rules)
        if errors:
            raise GraphQLValidationError(errors)
        self._cache[query] = document
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return document

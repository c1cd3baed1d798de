"""Parsed and validated GraphQL documents, cached by their text.

Clients send the same few documents over and over; parsing and validating one costs about a millisecond
in graphql-core, which is a tenth of a command's budget. Only documents that passed validation are cached.

Work on a new document is bounded before it is done: the parser stops at MAX_TOKENS (a hostile document of
60,000 aliases is refused while it is lexed, in milliseconds), shapes that make the standard rules slow are
refused next (document_shape.py), and our own rules (depth, cost), which walk
fragments, run only on a document that passed the standard rules (so a fragment cycle or an unknown
fragment gets graphql-core's message, not a RecursionError). `validated` does that work in a worker
thread, so that the event loop (and /healthz) keeps answering while it runs.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from graphql.validation import ASTValidationRule
from graphql_server.exceptions import GraphQLValidationError

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules, validate
from modelreg.graphql.document_shape import shape_errors

# The web UI's and the client's biggest documents have under 100 tokens, GraphiQL's introspection query about
# 200 (tests/unit/test_graphql_documents.py measures them): 2,000 leaves room for scripts' own queries, and
# with the shape limits (document_shape.py) keeps validating any document to tens of milliseconds.
MAX_TOKENS = 2_000
# And at most this many characters (the UI's biggest document has 2,000): a megabyte is refused unread.
MAX_DOCUMENT_CHARS = 100_000


class ValidatedDocuments:
    def __init__(
        self,
        schema: GraphQLSchema,
        extra_rules: tuple[type[ASTValidationRule], ...],
        size: int = 1000,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        self._schema = schema
        self._extra_rules = extra_rules
        self._size = size
        self._max_tokens = max_tokens
        self._cache: OrderedDict[str, DocumentNode] = OrderedDict()
        self._one_at_a_time = asyncio.Semaphore(1)

    def get(self, query: str) -> DocumentNode:
        document = self._cached(query)
        if document is None:
            document = self._remember(query, self._checked(query))
        return document

    async def validated(self, query: str) -> DocumentNode:
        """`get`, with a new document parsed and validated in a worker thread (the cache stays on the loop),
        one at a time: a flood of new documents waits its turn instead of taking every core from the loop."""
        document = self._cached(query)
        if document is None:
            async with self._one_at_a_time:
                document = self._remember(query, await asyncio.to_thread(self._checked, query))
        return document

    def _cached(self, query: str) -> DocumentNode | None:
        document = self._cache.get(query)
        if document is not None:
            self._cache.move_to_end(query)
        return document

    def _remember(self, query: str, document: DocumentNode) -> DocumentNode:
        self._cache[query] = document
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return document

    def _checked(self, query: str) -> DocumentNode:
        if len(query) > MAX_DOCUMENT_CHARS:
            too_long = GraphQLError(
                f"the document has {len(query):,} characters, over this server's limit of {MAX_DOCUMENT_CHARS:,}: "
                "split it into several requests (fewer fields or aliases each)"
            )
            raise GraphQLValidationError([too_long])
        try:
            document = parse(query, max_tokens=self._max_tokens)
            errors = shape_errors(document) or validate(self._schema, document, specified_rules)
            if not errors and self._extra_rules:
                errors = validate(self._schema, document, self._extra_rules)
        except GraphQLError as exc:
            if "tokens. Parsing aborted" in exc.message:
                exc = GraphQLError(
                    f"the document has more than {self._max_tokens:,} tokens, this server's limit: "
                    "split it into several requests (fewer fields or aliases each)"
                )
            raise GraphQLValidationError([exc]) from exc
        except RecursionError:
            too_deep = GraphQLError("the document is nested too deeply to read: nest less")
            raise GraphQLValidationError([too_deep]) from None
        if errors:
            raise GraphQLValidationError(errors)
        return document

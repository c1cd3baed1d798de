"""Shapes that make validation slow, refused before it runs.

graphql-core's OverlappingFieldsCanBeMerged compares every pair of fields that share a response name in a
selection set, and every pair of fragments spread side by side: a document of 2,000 tokens that repeats
`id` 2,000 times takes seconds of CPU to validate. No client needs that, so one pass over the parsed
document (linear) bounds what those comparisons can cost. Inline fragments count in the selection set
they are in, since validation merges them into it.
"""

from __future__ import annotations

from collections import Counter

from graphql import DocumentNode, FieldNode, FragmentSpreadNode, GraphQLError, InlineFragmentNode, SelectionSetNode
from modelreg.errors import quoted

MAX_SELECTIONS = 200  # fields and fragment spreads in one selection set (the web UI's biggest has about 20)
MAX_REPEATS = 3  # times one response name (a field, or its alias) may appear in one selection set
MAX_SPREADS = 10  # distinct named fragments spread in one selection set


def shape_errors(document: DocumentNode) -> list[GraphQLError]:
    errors: list[GraphQLError] = []
    for definition in document.definitions:
        selection_set = getattr(definition, "selection_set", None)
        if selection_set is not None:
            _check(selection_set, errors)
        if errors:
            break
    return errors


def _check(selection_set: SelectionSetNode, errors: list[GraphQLError]) -> None:
    fields: list[FieldNode] = []
    spreads: set[str] = set()
    count = 0
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            count += 1
            if isinstance(selection, FieldNode):
                fields.append(selection)
            elif isinstance(selection, FragmentSpreadNode):
                spreads.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
    if count > MAX_SELECTIONS:
        message = f"a selection set holds {count} selections, over the limit of {MAX_SELECTIONS}: split the query"
        errors.append(GraphQLError(message, selection_set))
        return
    if len(spreads) > MAX_SPREADS:
        message = f"a selection set spreads {len(spreads)} fragments, over the limit of {MAX_SPREADS}: merge them"
        errors.append(GraphQLError(message, selection_set))
        return
    names = Counter((f.alias or f.name).value for f in fields)
    repeated = [name for name, n in names.items() if n > MAX_REPEATS]
    if repeated:
        errors.append(
            GraphQLError(
                f"{quoted(repeated[0])} is asked for {names[repeated[0]]} times in one selection set, over the "
                f"limit of {MAX_REPEATS}: ask for it once (or give each an alias)",
                selection_set,
            )
        )
        return
    for field in fields:
        if field.selection_set is not None:
            _check(field.selection_set, errors)
            if errors:
                return

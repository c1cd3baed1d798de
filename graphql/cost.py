"""A limit on how much work one query may ask for, estimated before it runs.

Depth alone lets a shallow query ask for 500 models x 500 versions x every file. Each field is counted
once per time it may be resolved: a page multiplies what is under it by its `first`/`limit` (a variable
counts as the largest page, 500, whatever its default (lineage's `fanOut`, up to 1,000, and `scanHistory`'s `first`
have budgets of their own): the estimate is made once per document, and the request may send
any value; counted as its default, 40 aliases of a nested page passed with defaults of 1 and ran with 500, 40,000
queries for 14 s); another list of objects by LIST_GUESS. A page's own `items` are counted by the page's size, not
again.
"""

from __future__ import annotations

from graphql.validation import ValidationRule

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)

PAGE_ARGUMENTS = ("first", "limit", "fanOut")
LIST_GUESS = 10


def cost_limit_validator(max_cost: int, largest_page: int) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> None:
            estimate = QueryCost(self.context, largest_page).of_operation(node)
            if estimate > max_cost:
                name = node.name.value if node.name else "the query"
                self.report_error(
                    GraphQLError(
                        f"{name} could cost {estimate:,} field resolutions, over the limit of {max_cost:,}: "
                        "ask for smaller pages (first:) and fewer nested lists, and page with cursors",
                        node,
                    )
                )

    return CostLimit


class QueryCost:
    def __init__(self, context: ValidationContext, largest_page: int) -> None:
        self._context = context
        self._largest_page = largest_page
        self._fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in context.document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def of_operation(self, node: OperationDefinitionNode) -> int:
        schema = self._context.schema
        root = {
            OperationType.QUERY: schema.query_type,
            OperationType.MUTATION: schema.mutation_type,
            OperationType.SUBSCRIPTION: schema.subscription_type,
        }[node.operation]
        return self._of_selections(node.selection_set, root, set(), in_page=False) if root else 0

    def _of_selections(
        self, selections: SelectionSetNode, parent: GraphQLObjectType, seen: set[str], *, in_page: bool
    ) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += self._of_field(selection, parent, seen, in_page=in_page)
            elif isinstance(selection, InlineFragmentNode):
                total += self._of_selections(
                    selection.selection_set, self._narrowed(selection, parent), seen, in_page=in_page
                )
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self._fragments.get(selection.name.value)
                if fragment is not None and fragment.name.value not in seen:  # cycles are another rule's error
                    narrowed = self._context.schema.get_type(fragment.type_condition.name.value)
                    target = narrowed if isinstance(narrowed, GraphQLObjectType) else parent
                    total += self._of_selections(
                        fragment.selection_set, target, seen | {fragment.name.value}, in_page=in_page
                    )
        return total

    def _of_field(self, node: FieldNode, parent: GraphQLObjectType, seen: set[str], *, in_page: bool) -> int:
        definition = parent.fields.get(node.name.value)
        if definition is None or node.selection_set is None:
            return 1
        child = get_named_type(definition.type)
        if not isinstance(child, GraphQLObjectType):
            return 1
        page = self._page(node, definition)
        if page is not None:
            times = page
        elif is_list_type(get_nullable_type(definition.type)):
            times = 1 if in_page else LIST_GUESS
        else:
            times = 1
        return 1 + times * self._of_selections(node.selection_set, child, seen, in_page=page is not None)

    def _page(self, node: FieldNode, definition: GraphQLField) -> int | None:
        given = {a.name.value: a.value for a in node.arguments or ()}
        for name in PAGE_ARGUMENTS:
            value = given.get(name)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                return self._largest_page
            declared = definition.args.get(name)
            if value is None and declared is not None and isinstance(declared.default_value, int):
                return declared.default_value
        return None

    def _narrowed(self, node: InlineFragmentNode, parent: GraphQLObjectType) -> GraphQLObjectType:
        if node.type_condition is None:
            return parent
        narrowed = self._context.schema.get_type(node.type_condition.name.value)
        return narrowed if isinstance(narrowed, GraphQLObjectType) else parent

"""The root schema only merges the features."""

from __future__ import annotations

import graphene
from graphql.execution.middleware import MiddlewareManager

from modelreg.graphql.answer_budget import measure_stored_data
from modelreg.graphql.artifacts import ArtifactMutations, ArtifactQueries
from modelreg.graphql.automations import AutomationMutations, AutomationQueries
from modelreg.graphql.errors import report_errors
from modelreg.graphql.identity import IdentityMutations, IdentityQueries
from modelreg.graphql.launch import LaunchMutations, LaunchQueryFields
from modelreg.graphql.lineage import LineageQueries
from modelreg.graphql.metrics import MetricMutations
from modelreg.graphql.models import ModelMutations, ModelQueries
from modelreg.graphql.parked_streams import ParkedStreamMutations, ParkedStreamQueryFields
from modelreg.graphql.runs import RunMutations, RunQueries
from modelreg.graphql.storable_arguments import refuse_unstorable_arguments
from modelreg.graphql.subscriptions import EventSubscriptions
from modelreg.graphql.visibility import VisibilityMutations, VisibilityQueries


class Query(
    ArtifactQueries,
    ModelQueries,
    RunQueries,
    LineageQueries,
    IdentityQueries,
    LaunchQueryFields,
    AutomationQueries,
    ParkedStreamQueryFields,
    VisibilityQueries,
    graphene.ObjectType,
):
    pass


class Mutation(
    ArtifactMutations,
    ModelMutations,
    RunMutations,
    MetricMutations,
    IdentityMutations,
    LaunchMutations,
    AutomationMutations,
    ParkedStreamMutations,
    VisibilityMutations,
    graphene.ObjectType,
):
    pass


class Subscription(EventSubscriptions, graphene.ObjectType):
    pass


def build_schema() -> graphene.Schema:
    schema = graphene.Schema(query=Query, mutation=Mutation, subscription=Subscription)
    measure_stored_data(schema.graphql_schema)  # what an answer carries of them is bounded (answer_budget.py)
    return schema


# What every execution of the schema runs each field through (the last one listed is the outermost): text
# PostgreSQL cannot store is refused before a resolver runs; whatever a resolver raises leaves as our errors.
RESOLVER_MIDDLEWARE = MiddlewareManager(refuse_unstorable_arguments, report_errors)

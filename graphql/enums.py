"""The closed sets of values the API speaks, as GraphQL enums.

On the wire a value is its upper-case name (RUNNING, LOCAL_PROCESS); inside, resolvers and commands keep
the lower-case values the events and read models hold ("running", "local-process"). A resolver may return
either; an argument arrives as the enum member and `value_of` (or `parse_command`) turns it back.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, get_args

import graphene

from modelreg.events.identity import Role as RoleValues
from modelreg.events.launch import ResourceKind
from modelreg.events.runs import AlertLevel as AlertLevelValues
from modelreg.events.runs import RunFinished


def closed_set(name: str, values: tuple[str, ...], description: str) -> type[graphene.Enum]:
    members = [(value.upper().replace("-", "_"), value) for value in values]
    return graphene.Enum(name, members, description=description)


def value_of(member: Any) -> Any:
    """An enum argument's value as the events hold it ("running"); anything else as it is."""
    return member.value if isinstance(member, Enum) else member


RUN_STATES = ("running", *get_args(RunFinished.model_fields["state"].annotation))
JOB_STATES = ("queued", "claimed", "running", "finished", "failed", "cancelled")
FINISHED_JOB_STATES = ("finished", "failed")
ROLES = get_args(RoleValues)
PRINCIPAL_KINDS = ("user", "service")
RESOURCES = get_args(ResourceKind)
OUTPUT_STREAMS = ("stdout", "stderr")
FIRING_STATUSES = ("pending", "skipped", "enqueued", "delivered", "failed")
LINEAGE_NODE_KINDS = ("run", "artifact")
LINEAGE_EDGE_KINDS = ("produced", "used")
VISIBILITIES = ("public", "private")
PROJECT_ORDERS = ("last_activity", "name")

RunState = closed_set("RunState", RUN_STATES, "a run's state: running until it finishes, fails or crashes")
FinishedRunState = closed_set("FinishedRunState", RUN_STATES[1:], "how a run ended")
JobState = closed_set("JobState", JOB_STATES, "a Launch job's state")
FinishedJobState = closed_set("FinishedJobState", FINISHED_JOB_STATES, "how a job's process ended")
Role = closed_set("Role", ROLES, "viewer reads, member writes, admin also manages access and protected aliases")
PrincipalKind = closed_set("PrincipalKind", PRINCIPAL_KINDS, "who holds a key: a person or a program")
LaunchResource = closed_set("LaunchResource", RESOURCES, "where a queue's jobs run")
OutputStream = closed_set("OutputStream", OUTPUT_STREAMS, "which output of a job's process")
FiringStatus = closed_set(
    "FiringStatus", FIRING_STATUSES, "pending, skipped (cooldown), enqueued (a job), delivered (a webhook) or failed"
)
AlertLevel = closed_set("AlertLevel", get_args(AlertLevelValues), "how much an alert of a run matters")
LineageNodeKind = closed_set("LineageNodeKind", LINEAGE_NODE_KINDS, "a run or an artifact version")
LineageEdgeKind = closed_set(
    "LineageEdgeKind", LINEAGE_EDGE_KINDS, "produced (run -> version) or used (version -> run)"
)
ProjectOrder = closed_set(
    "ProjectOrder",
    PROJECT_ORDERS,
    "LAST_ACTIVITY: the most recently active first (a project active between pages moves to the front); NAME: by "
    "entity, then project (every project once, however active)",
)
Visibility = closed_set(
    "Visibility", VISIBILITIES, "public (the default: every key reads it) or private (its grant holders and admin keys)"
)


class LineageDirection(graphene.Enum):
    """Which way a lineage walk goes: UPSTREAM to what made a node, DOWNSTREAM to what it made."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"

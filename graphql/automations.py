"""Automations: create, enable/disable, and each one's firings and webhook deliveries."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from modelreg.errors import NotFound
from modelreg.graphql.errors import reports_errors
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.launch import parse_uuid
from modelreg.graphql.pages import page_size
from modelreg.services.commands.launch_commands import CreateAutomation, SetAutomationEnabled


class Firing(graphene.ObjectType):
    event_id = graphene.ID(required=True)
    event_type = graphene.String(required=True)
    actor = graphene.String(required=True, description="who caused the event that fired it")
    variables = GenericScalar(required=True)
    status = graphene.String(required=True, description="pending, skipped (cooldown), enqueued, delivered or failed")
    job_id = graphene.ID()
    detail = graphene.String()
    occurred_at = graphene.DateTime(required=True)
    done_at = graphene.DateTime()


class WebhookDelivery(graphene.ObjectType):
    event_id = graphene.ID(required=True, description="the event that fired the automation")
    attempt = graphene.Int(required=True)
    url = graphene.String(required=True)
    status_code = graphene.Int()
    error = graphene.String()
    duration_ms = graphene.Float(required=True)
    attempted_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_event_id(row: dict, info: graphene.ResolveInfo) -> str:
        return str(row["trigger_event_id"])


class Automation(graphene.ObjectType):
    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    description = graphene.String()
    trigger = GenericScalar(required=True)
    action = GenericScalar(required=True)
    cooldown_s = graphene.Float(required=True)
    enabled = graphene.Boolean(required=True)
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)
    last_fired_at = graphene.DateTime()
    firings = graphene.List(graphene.NonNull(Firing), required=True, first=graphene.Int(default_value=50))
    deliveries = graphene.List(graphene.NonNull(WebhookDelivery), required=True, first=graphene.Int(default_value=50))

    @staticmethod
    def resolve_id(row: dict, info: graphene.ResolveInfo) -> str:
        return str(row["automation_id"])

    @staticmethod
    @reports_errors
    async def resolve_firings(row: dict, info: graphene.ResolveInfo, first: int) -> list[dict]:
        return await info.context.launch.firings(row["automation_id"], page_size(first))

    @staticmethod
    @reports_errors
    async def resolve_deliveries(row: dict, info: graphene.ResolveInfo, first: int) -> list[dict]:
        return await info.context.launch.deliveries(row["automation_id"], page_size(first))


class CreatedAutomation(graphene.ObjectType):
    automation = graphene.Field(Automation, required=True)
    webhook_secret = graphene.String(description="shown once: verify X-Modelreg-Signature with it")


class AutomationQueries(graphene.ObjectType):
    automations = graphene.List(graphene.NonNull(Automation), required=True)
    automation = graphene.Field(Automation, id=graphene.ID(required=True))

    @staticmethod
    async def resolve_automations(root: Any, info: graphene.ResolveInfo) -> list[dict]:
        readable = info.context.readable
        return [a for a in await info.context.launch.automations() if readable.automation(a["trigger"], a["action"])]

    @staticmethod
    @reports_errors
    async def resolve_automation(root: Any, info: graphene.ResolveInfo, id: str) -> dict | None:
        found = await info.context.launch.automation(parse_uuid(id, "automation id"))
        return found if found and info.context.readable.automation(found["trigger"], found["action"]) else None


class AutomationMutations(graphene.ObjectType):
    create_automation = graphene.Field(
        CreatedAutomation,
        required=True,
        args={
            "name": graphene.String(required=True),
            "description": graphene.String(),
            "trigger": GenericScalar(
                required=True,
                description='e.g. {"event": "alias_added", "registered_model": "m", "alias_pattern": "candidate"}',
            ),
            "action": GenericScalar(
                required=True, description='{"kind": "launch", "queue", ...} or {"kind": "webhook", "url", "payload"}'
            ),
            "cooldown_s": graphene.Float(default_value=0),
            "enabled": graphene.Boolean(default_value=True),
        },
    )
    set_automation_enabled = graphene.Field(
        Automation, required=True, id=graphene.ID(required=True), enabled=graphene.Boolean(required=True)
    )

    @staticmethod
    @reports_errors
    async def resolve_create_automation(root: Any, info: graphene.ResolveInfo, **fields: Any) -> dict:
        command = parse_command(CreateAutomation, fields)
        accepted = await info.context.app.execute(command, info.context.caller)
        automation = await _visible(info, accepted.subject_id)
        secret = (
            info.context.webhook_secrets.secret(accepted.subject_id, 1) if command.action.kind == "webhook" else None
        )
        return {"automation": automation, "webhook_secret": secret}

    @staticmethod
    @reports_errors
    async def resolve_set_automation_enabled(root: Any, info: graphene.ResolveInfo, id: str, enabled: bool) -> dict:
        automation_id = parse_uuid(id, "automation id")
        await info.context.app.execute(
            parse_command(SetAutomationEnabled, {"automation_id": automation_id, "enabled": enabled}),
            info.context.caller,
        )
        return await _visible(info, automation_id)


async def _visible(info: graphene.ResolveInfo, automation_id: Any) -> dict:
    automation = await info.context.launch.automation(automation_id)
    if automation is None:
        raise NotFound(f"automation {automation_id} is not visible")
    return automation

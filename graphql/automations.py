"""Automations: create, enable/disable, and each one's firings and webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import graphene

from modelreg.errors import NotFound, Unavailable
from modelreg.graphql.enums import FiringStatus
from modelreg.graphql.inputs import parse_command
from modelreg.graphql.json_value import JSONValue
from modelreg.graphql.pages import Cursors, key_page, page_of, page_size, paged
from modelreg.graphql.references import parse_uuid
from modelreg.graphql.warnings import warnings_field
from modelreg.projections.timestamps import parsed_time
from modelreg.services.automations.shown_urls import (
    action_shown_to_others,
    reads_whole_urls,
    url_shown_to_others,
    urls_shown_to_others_in,
)
from modelreg.services.automations.webhook_signing import WITHOUT_A_KEY
from modelreg.services.commands.access_warnings import keyless_creator
from modelreg.services.commands.launch_commands import (
    ChangeAutomation,
    CreateAutomation,
    DeleteAutomation,
    RetryFiring,
    RotateWebhookSecret,
    SetAutomationEnabled,
)


class Firing(graphene.ObjectType):
    event_id = graphene.ID(required=True)
    event_type = graphene.String(required=True)
    actor = graphene.String(required=True, description="who caused the event that fired it")
    variables = JSONValue(required=True)
    status = graphene.Field(FiringStatus, required=True)
    job_id = graphene.ID()
    detail = graphene.String()
    occurred_at = graphene.DateTime(required=True)
    done_at = graphene.DateTime()
    retries = graphene.Int(required=True, description="how many times it was carried out again (retryFiring)")


class WebhookDelivery(graphene.ObjectType):
    event_id = graphene.ID(required=True, description="the event that fired the automation")
    attempt = graphene.Int(required=True)
    url = graphene.String(
        required=True, description="whole to the automation's creator; to anyone else its scheme and host, then /…"
    )
    status_code = graphene.Int()
    error = graphene.String()
    duration_ms = graphene.Float(required=True)
    attempted_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_event_id(row: dict, info: graphene.ResolveInfo) -> str:
        return str(row["trigger_event_id"])


FiringPage = page_of(Firing)
WebhookDeliveryPage = page_of(WebhookDelivery)


class Automation(graphene.ObjectType):
    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    description = graphene.String()
    trigger = JSONValue(required=True)
    action = JSONValue(
        required=True,
        description="a webhook's url whole to its creator only (it may hold a token): to anyone else its scheme and "
        "host, then /…",
    )
    cooldown_s = graphene.Float(required=True)
    enabled = graphene.Boolean(required=True)
    deleted_at = graphene.DateTime(description="when it was deleted: it fires no more, and only its id finds it")
    created_at = graphene.DateTime(required=True)
    created_by = graphene.String(required=True)
    last_fired_at = graphene.DateTime()
    firings = paged(FiringPage, description="newest first")
    deliveries = paged(WebhookDeliveryPage, description="webhook calls, newest first")
    warnings = warnings_field(
        "In the answer of createAutomation and changeAutomation: what the caller should know though it "
        "was accepted (a registered model or collection it watches that does not exist yet, a typo maybe). Whenever "
        "it is read: that its creator holds no live key, so that it acts with a viewer's rights on public data only.",
    )

    @staticmethod
    async def resolve_warnings(row: dict, info: graphene.ResolveInfo) -> list[str]:
        warnings = list(row.get("warnings", ()))
        if row.get("deleted_at") is None and not await info.context.key_holders.load(row["created_by"]):
            # Its firings say so too, each refused one: this says it before the first, and where it is listed.
            action = await Automation.resolve_action(row, info)
            warnings.append(keyless_creator(row["created_by"], action.get("kind")))
        return warnings

    @staticmethod
    def resolve_id(row: dict, info: graphene.ResolveInfo) -> str:
        return str(row["automation_id"])

    @staticmethod
    async def resolve_action(row: dict, info: graphene.ResolveInfo) -> Any:
        if "action" not in row:  # a list of automations is read without them (projections/launch_queries.py)
            found = await info.context.automation_actions.load(row["automation_id"])
            row["action"] = found["action"] if found else {}
        return row["action"] if _reads_whole_urls(info, row) else action_shown_to_others(row["action"])

    @staticmethod
    async def resolve_last_fired_at(row: dict, info: graphene.ResolveInfo) -> datetime | None:
        readable = info.context.readable
        if readable.hides_nothing:
            return row["last_fired_at"]
        return await info.context.launch.last_fired_at(
            row["automation_id"],
            hidden_entities=sorted(readable.hidden_entities),
            hidden_models=sorted(readable.hidden_models),
        )

    @staticmethod
    async def resolve_firings(row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None) -> dict:
        limit = page_size(first)
        cursors = Cursors.of(info)
        before = cursors.decode(after, parsed_time, UUID)
        readable = info.context.readable
        rows = await info.context.launch.firings(
            row["automation_id"],
            limit + 1,
            before=before,
            hidden_entities=sorted(readable.hidden_entities),
            hidden_models=sorted(readable.hidden_models),
        )
        if not _reads_whole_urls(info, row):  # a webhook's refusal repeats its url
            rows = [{**f, "detail": f["detail"] and urls_shown_to_others_in(f["detail"])} for f in rows]
        return key_page(rows, limit, after, lambda last: cursors.encode(last["occurred_at"], last["event_id"]))

    @staticmethod
    async def resolve_deliveries(row: dict, info: graphene.ResolveInfo, first: int, after: str | None = None) -> dict:
        limit = page_size(first)
        cursors = Cursors.of(info)
        before = cursors.decode(after, parsed_time, UUID)
        readable = info.context.readable
        rows = await info.context.launch.deliveries(
            row["automation_id"],
            limit + 1,
            before=before,
            hidden_entities=sorted(readable.hidden_entities),
            hidden_models=sorted(readable.hidden_models),
        )
        if not _reads_whole_urls(info, row):
            rows = [
                {**d, "url": url_shown_to_others(d["url"]), "error": d["error"] and urls_shown_to_others_in(d["error"])}
                for d in rows
            ]
        return key_page(rows, limit, after, lambda last: cursors.encode(last["attempted_at"], last["event_id"]))


AutomationPage = page_of(Automation)


class CreatedAutomation(graphene.ObjectType):
    automation = graphene.Field(Automation, required=True)
    webhook_secret = graphene.String(description="shown once: verify X-Modelreg-Signature with it")


class AutomationQueries(graphene.ObjectType):
    automations = paged(AutomationPage, description="Automations, oldest first.")
    automation = graphene.Field(Automation, id=graphene.ID(required=True))

    @staticmethod
    async def resolve_automations(root: Any, info: graphene.ResolveInfo, first: int, after: str | None = None) -> dict:
        limit = page_size(first)
        cursors = Cursors.of(info)
        position = cursors.decode(after, parsed_time, UUID)
        readable = info.context.readable
        rows = await info.context.launch.automations(
            after=position,
            limit=limit + 1,
            hidden_entities=sorted(readable.hidden_entities),
            hidden_models=sorted(readable.hidden_models),
        )
        return key_page(rows, limit, after, lambda last: cursors.encode(last["created_at"], last["automation_id"]))

    @staticmethod
    async def resolve_automation(root: Any, info: graphene.ResolveInfo, id: str) -> dict | None:
        found = await info.context.launch.automation(parse_uuid("id", id))
        return found if found and info.context.readable.automation(found["trigger"], found["action"]) else None


class CreateAutomationInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    description = graphene.String()
    trigger = JSONValue(
        required=True,
        description='e.g. {"event": "alias_added", "registered_model": "m", "alias_pattern": "candidate"}',
    )
    action = JSONValue(
        required=True, description='{"kind": "launch", "queue", ...} or {"kind": "webhook", "url", "payload"}'
    )
    cooldown_s = graphene.Float(description="seconds between firings; 0 unless given")
    enabled = graphene.Boolean(description="true unless given")


class SetAutomationEnabledInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    enabled = graphene.Boolean(required=True)


class ChangeAutomationInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    description = graphene.String()
    trigger = JSONValue(required=True, description="as createAutomation takes it")
    action = JSONValue(required=True, description="as createAutomation takes it, of the same kind")
    cooldown_s = graphene.Float(description="seconds between firings; 0 unless given")


class DeleteAutomationInput(graphene.InputObjectType):
    id = graphene.ID(required=True)


class RotateWebhookSecretInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    keep_previous_s = graphene.Int(
        description="how long the previous secret signs beside the new one, in seconds (0 to 604800; a day unless "
        "given; 0: a leaked secret, refused by receivers at once)"
    )


class RotatedWebhookSecret(graphene.ObjectType):
    automation = graphene.Field(Automation, required=True)
    webhook_secret = graphene.String(required=True, description="shown once: verify the signatures with it")
    previous_signs_until = graphene.DateTime(
        description="until then each delivery's X-Modelreg-Signature-V2 carries a second v1, made with the previous "
        "secret (verify any v1); null: the previous secret signs nothing"
    )


class RetryFiringInput(graphene.InputObjectType):
    id = graphene.ID(required=True, description="the automation's")
    event_id = graphene.ID(required=True, description="the event that fired it")


class AutomationMutations(graphene.ObjectType):
    create_automation = graphene.Field(CreatedAutomation, required=True, input=CreateAutomationInput(required=True))
    set_automation_enabled = graphene.Field(Automation, required=True, input=SetAutomationEnabledInput(required=True))
    change_automation = graphene.Field(
        Automation,
        required=True,
        input=ChangeAutomationInput(required=True),
        description="Its creator's only: its whole new spec (name, trigger, action of the same kind, cooldown). "
        "Its id, webhook secret, history and whether it is on stay.",
    )
    delete_automation = graphene.Field(
        Automation,
        required=True,
        input=DeleteAutomationInput(required=True),
        description="Its creator's, an installation admin's, or an admin's of where it acts (the entity it launches "
        "jobs in, else the entity or model it watches). It fires no more and is listed no more; its firings and "
        "deliveries stay, and `automation(id)` still finds it, with `deletedAt`.",
    )
    rotate_webhook_secret = graphene.Field(
        RotatedWebhookSecret,
        required=True,
        input=RotateWebhookSecretInput(required=True),
        description="Its creator's: a webhook's secret replaced by a new one, shown once (the old one leaked, or a "
        "receiver moved). Deliveries are signed with it from now on, and with the previous one too for "
        "keepPreviousS, so that the receiver switches over without refusing a delivery.",
    )
    retry_firing = graphene.Field(
        Firing,
        required=True,
        input=RetryFiringInput(required=True),
        description="Its creator's, or an admin's: a FAILED or SKIPPED firing carried out again, as the automation "
        "is now (it must be on). A webhook is called again under the same X-Modelreg-Delivery id, its attempts "
        "numbered on; a launch enqueues the job. Returns the firing, PENDING until the runner is done.",
    )

    @staticmethod
    async def resolve_create_automation(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        command = parse_command(CreateAutomation, input)
        if command.action.kind == "webhook" and not info.context.webhook_secrets.can_sign:
            # Refused before anything is appended: created, it could not be shown its secret, and a retry made a
            # second live automation.
            raise Unavailable(f"this API process cannot create a webhook: {WITHOUT_A_KEY}", retriable=False)
        accepted = await info.context.app.execute(command, info.context.caller)
        automation = {**await _visible(info, accepted.subject_id), "warnings": accepted.warnings}
        secret = (
            info.context.webhook_secrets.secret(accepted.subject_id, 1) if command.action.kind == "webhook" else None
        )
        return {"automation": automation, "webhook_secret": secret}

    @staticmethod
    async def resolve_set_automation_enabled(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        automation_id = parse_uuid("id", input["id"])
        await info.context.app.execute(
            parse_command(SetAutomationEnabled, {"automation_id": automation_id, "enabled": input["enabled"]}),
            info.context.caller,
        )
        return await _visible(info, automation_id)

    @staticmethod
    async def resolve_change_automation(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        automation_id = parse_uuid("id", input["id"])
        fields = {k: v for k, v in input.items() if k != "id"}
        accepted = await info.context.app.execute(
            parse_command(ChangeAutomation, {"automation_id": automation_id, **fields}), info.context.caller
        )
        return {**await _visible(info, automation_id), "warnings": accepted.warnings}

    @staticmethod
    async def resolve_retry_firing(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        automation_id, event_id = parse_uuid("id", input["id"]), parse_uuid("eventId", input["event_id"])
        await info.context.app.execute(
            parse_command(RetryFiring, {"automation_id": automation_id, "event_id": event_id}), info.context.caller
        )
        firing = await info.context.launch.firing(automation_id, event_id)
        if firing is None:
            raise NotFound(f"automation {automation_id} did not fire for event {event_id}")
        automation = await info.context.launch.automation(automation_id)
        if automation is None or not _reads_whole_urls(info, automation):  # an admin retrying another's
            firing = {**firing, "detail": firing["detail"] and urls_shown_to_others_in(firing["detail"])}
        return firing

    @staticmethod
    async def resolve_rotate_webhook_secret(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        automation_id = parse_uuid("id", input["id"])
        if not info.context.webhook_secrets.can_sign:
            raise Unavailable(f"this API process cannot sign webhooks: {WITHOUT_A_KEY}", retriable=False)
        fields: dict[str, Any] = {"automation_id": automation_id}
        if input.get("keep_previous_s") is not None:
            fields["keep_previous_s"] = input["keep_previous_s"]
        accepted = await info.context.app.execute(parse_command(RotateWebhookSecret, fields), info.context.caller)
        automation = await _visible(info, automation_id)
        return {
            "automation": automation,
            "webhook_secret": info.context.webhook_secrets.secret(automation_id, accepted.subject_id),
            "previous_signs_until": automation["previous_secret_until"],
        }

    @staticmethod
    async def resolve_delete_automation(root: Any, info: graphene.ResolveInfo, input: dict) -> dict:
        automation_id = parse_uuid("id", input["id"])
        await info.context.app.execute(
            parse_command(DeleteAutomation, {"automation_id": automation_id}), info.context.caller
        )
        return await _visible(info, automation_id)


def _reads_whole_urls(info: graphene.ResolveInfo, automation: dict) -> bool:
    """Its creator reads its webhook's url, and the deliveries' and refusals', whole; anyone else where it calls
    (services/automations/shown_urls.py)."""
    return reads_whole_urls(info.context.caller, automation["created_by"])


async def _visible(info: graphene.ResolveInfo, automation_id: Any) -> dict:
    automation = await info.context.launch.automation(automation_id)
    if automation is None:
        raise NotFound(f"automation {automation_id} is not visible")
    return automation

"""Automations: nobody automates what they could not do by hand, a webhook points at public addresses unless an
installation admin allows otherwise, and the runner's records go on the automation's stream."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError
from support.write_side import ADMIN, MEMBER, WriteSide, caller
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelreg.events.automations import FiringRetried
from modelreg.services.commands.commands import LinkVersion, LogArtifactVersion
from modelreg.services.commands.launch_commands import (
    ChangeAutomation,
    CreateAutomation,
    CreateQueue,
    DeleteAutomation,
    RecordAutomationFired,
    RecordWebhookAttempt,
    RetryFiring,
    RotateWebhookSecret,
    SetAutomationEnabled,
)

LAUNCH = {
    "kind": "launch",
    "queue": "cpu",
    "entity": "acme",
    "project": "fraud",
    "source": {
        "kind": "git",
        "git_remote": "https://git.example.com/acme/eval.git",
        "entry_point": ["python", "eval.py"],
    },
}
ON_A_NEW_VERSION = {"event": "artifact_version_logged", "entity": "acme"}


def automation(action: dict[str, Any], trigger: dict[str, Any] = ON_A_NEW_VERSION, **fields: Any) -> CreateAutomation:
    return CreateAutomation(name="evaluate", trigger=trigger, action=action, **fields)


async def launching(registry: WriteSide, **fields: Any) -> UUID:
    await registry(CreateQueue(queue="cpu"))
    return (await registry(automation(LAUNCH, **fields), MEMBER)).subject_id


async def test_an_automation_that_launches_jobs_needs_the_queue() -> None:
    with pytest.raises(NotFound, match="queue 'cpu' does not exist: an admin creates it first"):
        await WriteSide()(automation(LAUNCH), MEMBER)


async def test_an_automation_launching_an_image_into_a_queue_of_local_processes_is_refused_when_created() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    image = {**LAUNCH, "source": {"kind": "image", "image": "ghcr.io/acme/eval:1", "entry_point": ["python", "e.py"]}}
    with pytest.raises(
        InvalidInput, match="queue 'cpu' runs its jobs as local processes, which cannot start an image: use a docker"
    ):
        await registry(automation(image), MEMBER)
    assert [e.type for e in registry.appended()] == ["launch.queue_created"]


async def test_a_trigger_pattern_the_database_cannot_run_is_refused_at_the_door() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    named_group = {"event": "alias_added", "alias_pattern": "(?P<stage>prod)"}  # Python's, not PostgreSQL's
    with pytest.raises(InvalidInput, match=r"trigger.alias_pattern '\(\?P<stage>prod\)' is not a regular expression"):
        await registry(automation(LAUNCH, named_group), MEMBER)
    assert [e.type for e in registry.appended()] == ["launch.queue_created"]


@pytest.mark.parametrize("pattern", [r"(prod)\1", r"(.*)(.*)\2\1x", r"(a)\\\1"])
async def test_a_trigger_pattern_that_refers_back_to_a_group_is_refused_at_the_door(pattern: str) -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    with pytest.raises(InvalidInput, match=r"refers back to a group .* exponential in an alias's length"):
        await registry(automation(LAUNCH, {"event": "alias_added", "alias_pattern": pattern}), MEMBER)
    assert [e.type for e in registry.appended()] == ["launch.queue_created"]


async def test_an_escaped_backslash_before_a_digit_is_not_a_back_reference() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    await registry(automation(LAUNCH, {"event": "alias_added", "tag_pattern": r"v\\1|prod-\d+"}), MEMBER)
    assert [e.type for e in registry.appended()][-1] == "automations.automation_created"


async def test_an_automation_launches_only_where_its_creator_may_enqueue() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    watcher = caller("viewer", "wes", grants={"model:fraud": "member"})
    on_the_model = {"event": "alias_added", "registered_model": "fraud"}
    with pytest.raises(PermissionDenied, match="user:wes is a viewer of entity:acme; create automation needs member"):
        await registry(automation(LAUNCH, on_the_model), watcher)
    templated = {**LAUNCH, "entity": "${entity}"}  # where it launches is only known when it fires
    with pytest.raises(PermissionDenied, match=r"an automation that launches jobs in '\$\{entity\}' needs member"):
        await registry(automation(templated, on_the_model), watcher)


async def test_a_webhook_to_a_private_address_needs_an_installation_admin() -> None:
    registry = WriteSide()
    private = {"kind": "webhook", "url": "http://10.1.2.3/hook"}
    with pytest.raises(InvalidInput, match="points at 10.1.2.3, a loopback, private or otherwise non-public address"):
        await registry(automation(private), MEMBER)
    allowed = {**private, "allow_private_network": True}
    with pytest.raises(PermissionDenied, match="a webhook to a private or loopback address needs admin"):
        await registry(automation(allowed), MEMBER)
    await registry(automation(allowed), ADMIN)


async def test_a_webhook_to_a_public_address() -> None:
    registry = WriteSide()
    created = await registry(automation({"kind": "webhook", "url": "https://93.184.216.34/hook"}), MEMBER)
    [event] = created.events
    assert (event.type, event.stream) == ("automations.automation_created", f"automation:{created.subject_id}")


async def test_a_webhooks_secret_is_rotated_by_its_creator_the_previous_one_signing_for_a_while() -> None:
    registry = WriteSide()
    created = await registry(automation({"kind": "webhook", "url": "https://93.184.216.34/hook"}), MEMBER)
    hook = created.subject_id

    rotated = await registry(RotateWebhookSecret(automation_id=hook, keep_previous_s=3600), MEMBER)
    [event] = rotated.events
    assert (event.type, event.stream, rotated.subject_id) == (
        "automations.webhook_secret_rotated",
        f"automation:{hook}",
        2,
    )
    until = event.payload.previous_signs_until
    assert until is not None and 3590 < (until - event.occurred_at).total_seconds() <= 3600
    at_once = await registry(RotateWebhookSecret(automation_id=hook, keep_previous_s=0), MEMBER)
    assert (at_once.subject_id, at_once.events[0].payload.previous_signs_until) == (3, None)

    with pytest.raises(PermissionDenied, match="only user:mo, its creator, rotates the secret of automation"):
        await registry(RotateWebhookSecret(automation_id=hook), ADMIN)
    with pytest.raises(InvalidInput, match="launches jobs: it has no webhook secret to rotate"):
        await registry(RotateWebhookSecret(automation_id=await launching(registry)), MEMBER)
    with pytest.raises(ValidationError):
        RotateWebhookSecret(automation_id=hook, keep_previous_s=8 * 86_400)  # a week at most
    await registry(DeleteAutomation(automation_id=hook), MEMBER)
    with pytest.raises(Conflict, match="was deleted: it signs nothing any more"):
        await registry(RotateWebhookSecret(automation_id=hook), MEMBER)


async def test_disabling_and_enabling_an_automation() -> None:
    registry = WriteSide()
    automation_id = await launching(registry)
    assert (await registry(SetAutomationEnabled(automation_id=automation_id, enabled=True), MEMBER)).events == []
    await registry(SetAutomationEnabled(automation_id=automation_id, enabled=False), MEMBER)
    assert registry.read_models.launch.automations[automation_id]["enabled"] is False
    await registry(SetAutomationEnabled(automation_id=automation_id, enabled=True), MEMBER)
    assert registry.appended_types()[-2:] == ["automations.automation_disabled", "automations.automation_enabled"]


async def test_enabling_a_launching_automation_is_checked_on_the_entity_it_launches_in() -> None:
    registry = WriteSide()
    automation_id = await launching(registry, enabled=False)
    demoted = caller("viewer", "mo")
    with pytest.raises(PermissionDenied, match="viewer of entity:acme; set automation enabled needs member"):
        await registry(SetAutomationEnabled(automation_id=automation_id, enabled=True), demoted)


async def test_enabling_a_launching_automation_into_an_entity_the_caller_may_not_write() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    on_the_model = {"event": "alias_added", "registered_model": "fraud"}
    templated = {**LAUNCH, "entity": "${entity}"}
    automation_id = (await registry(automation(templated, on_the_model, enabled=False), ADMIN)).subject_id
    model_member = caller("viewer", "wes", grants={"model:fraud": "member"})
    with pytest.raises(PermissionDenied, match=r"switching on user:ada's automation needs admin"):
        await registry(SetAutomationEnabled(automation_id=automation_id, enabled=True), model_member)


async def test_switching_on_another_members_automation_needs_an_admin() -> None:
    """It would act with its creator's rights, for whoever switched it on."""
    registry = WriteSide()
    automation_id = await launching(registry, enabled=False)  # by user:mo
    other_member = caller("member", "mallory")
    with pytest.raises(PermissionDenied, match="switching on user:mo's automation needs admin"):
        await registry(SetAutomationEnabled(automation_id=automation_id, enabled=True), other_member)
    await registry(SetAutomationEnabled(automation_id=automation_id, enabled=True), ADMIN)
    assert registry.read_models.launch.automations[automation_id]["enabled"] is True


async def test_an_unknown_automation() -> None:
    with pytest.raises(NotFound, match="automation .* does not exist"):
        await WriteSide()(SetAutomationEnabled(automation_id=uuid7(), enabled=True))


async def test_the_runner_records_firings_and_webhook_attempts_as_the_automation() -> None:
    registry = WriteSide()
    automation_id, event_id = await launching(registry), uuid7()
    runner = caller("admin", str(automation_id), kind="automation")
    fired = RecordAutomationFired(
        automation_id=automation_id, event_id=event_id, event_type="artifacts.version_logged", outcome="failed"
    )
    attempt = RecordWebhookAttempt(
        automation_id=automation_id, event_id=event_id, attempt=1, url="https://x.example", duration_ms=3.5
    )
    assert (await registry(fired, runner)).subject_id == event_id
    assert (await registry(attempt, runner)).subject_id == event_id
    assert {e.stream for e in registry.appended()[-2:]} == {f"automation:{automation_id}"}
    with pytest.raises(PermissionDenied, match="record automation fired needs admin"):
        await registry(fired, MEMBER)


async def test_an_automation_that_watches_everything_is_checked_on_the_callers_key() -> None:
    registry = WriteSide()
    everywhere = automation({"kind": "webhook", "url": "https://93.184.216.34/hook"}, {"event": "run_finished"})
    with pytest.raises(PermissionDenied, match="viewer of this installation; create automation needs member"):
        await registry(everywhere, caller("viewer", "wes", grants={"entity:acme": "member"}))
    await registry(everywhere, MEMBER)


async def test_a_launch_action_naming_an_invalid_project_is_refused_when_created_not_at_each_firing() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    with pytest.raises(InvalidInput, match="action.project 'not a project!' is not a valid project name"):
        await registry(automation({**LAUNCH, "project": "not a project!"}), MEMBER)
    await registry(automation({**LAUNCH, "project": "${project}"}), MEMBER)  # filled, and checked, when it fires


async def test_switching_off_an_admins_automation_that_watches_every_team_needs_an_admin() -> None:
    """A member may switch off what watches a team; one watching every team is the installation's."""
    registry = WriteSide()
    audit_hook = {"kind": "webhook", "url": "https://93.184.216.34/audit"}
    everywhere = (await registry(automation(audit_hook, {"event": "run_finished"}), ADMIN)).subject_id
    with pytest.raises(PermissionDenied, match="switching off user:ada's automation of every team needs admin"):
        await registry(SetAutomationEnabled(automation_id=everywhere, enabled=False), MEMBER)
    on_acme = (await registry(automation(audit_hook), ADMIN)).subject_id
    await registry(SetAutomationEnabled(automation_id=on_acme, enabled=False), MEMBER)  # acme's, as before
    await registry(SetAutomationEnabled(automation_id=everywhere, enabled=False), ADMIN)
    assert registry.read_models.launch.automations[everywhere]["enabled"] is False


async def test_an_automation_is_deleted_by_its_creator_or_an_admin_and_never_switched_on_again() -> None:
    registry = WriteSide()
    mine = await launching(registry)
    with pytest.raises(PermissionDenied, match="deleting user:mo's automation needs admin"):
        await registry(DeleteAutomation(automation_id=mine), caller("member", "ned"))
    await registry(DeleteAutomation(automation_id=mine), MEMBER)
    assert registry.appended_types()[-1] == "automations.automation_deleted"
    assert registry.read_models.launch.automations[mine]["enabled"] is False
    assert (await registry(DeleteAutomation(automation_id=mine), MEMBER)).events == []  # a retry
    with pytest.raises(Conflict, match="was deleted: create another"):
        await registry(SetAutomationEnabled(automation_id=mine, enabled=True), MEMBER)

    theirs = (await registry(automation(LAUNCH), MEMBER)).subject_id
    await registry(DeleteAutomation(automation_id=theirs), ADMIN)
    assert registry.read_models.launch.automations[theirs]["deleted_at"] is not None


async def test_an_admin_of_the_team_an_automation_launches_in_deletes_it_after_its_creator_left() -> None:
    """Its creator's keys revoked, it stays theirs: a team admin cleans up without an installation admin."""
    registry = WriteSide()
    left = await launching(registry)  # user:mo's, launching jobs in acme
    acme_admin = caller("member", "lea", grants={"entity:acme": "admin"})
    other_admin = caller("member", "oz", grants={"entity:lynx": "admin"})
    with pytest.raises(PermissionDenied, match="user:oz is a member of entity:acme; deleting user:mo's automation"):
        await registry(DeleteAutomation(automation_id=left), other_admin)
    await registry(SetAutomationEnabled(automation_id=left, enabled=False), acme_admin)
    await registry(DeleteAutomation(automation_id=left), acme_admin)
    assert registry.read_models.launch.automations[left]["deleted_at"] is not None

    hook = {"kind": "webhook", "url": "https://93.184.216.34/audit"}
    everywhere = (await registry(automation(hook, {"event": "run_finished"}), MEMBER)).subject_id
    with pytest.raises(PermissionDenied, match="deleting user:mo's automation needs admin"):
        await registry(DeleteAutomation(automation_id=everywhere), acme_admin)  # every team's: the installation's
    await registry(DeleteAutomation(automation_id=everywhere), ADMIN)


async def test_only_its_creator_changes_an_automation_and_its_action_keeps_its_kind() -> None:
    registry = WriteSide()
    mine = await launching(registry)
    on_success = {"event": "run_finished", "entity": "acme", "run_state": "finished"}
    change = ChangeAutomation(automation_id=mine, name="evaluate on success", trigger=on_success, action=LAUNCH)
    with pytest.raises(PermissionDenied, match="only user:mo, its creator, changes automation"):
        await registry(change, ADMIN)
    with pytest.raises(InvalidInput, match="stays a launch"):
        await registry(
            ChangeAutomation(
                **{**change.model_dump(), "action": {"kind": "webhook", "url": "https://93.184.216.34/h"}}
            ),
            MEMBER,
        )
    with pytest.raises(InvalidInput, match="names \\$\\{alias\\}, which a run_finished trigger does not provide"):
        await registry(
            ChangeAutomation(**{**change.model_dump(), "action": {**LAUNCH, "config": {"a": "${alias}"}}}), MEMBER
        )

    await registry(change, MEMBER)
    changed = registry.read_models.launch.automations[mine]
    assert (changed["trigger"]["event"], changed["trigger"]["run_state"]) == ("run_finished", "finished")
    await registry(DeleteAutomation(automation_id=mine), MEMBER)
    with pytest.raises(Conflict, match="was deleted: create another"):
        await registry(change, MEMBER)


async def test_a_failed_or_skipped_firing_is_retried_by_its_automations_creator_or_an_admin() -> None:
    registry = WriteSide()
    mine = await launching(registry)
    runner = caller("admin", str(mine), kind="automation")
    failed, delivered, skipped = uuid7(), uuid7(), uuid7()
    for event_id, outcome in ((failed, "failed"), (delivered, "enqueued")):
        await registry(
            RecordAutomationFired(
                automation_id=mine, event_id=event_id, event_type="runs.run_finished", outcome=outcome, job_id=None
            ),
            runner,
        )
    registry.read_models.launch.firings[mine, skipped] = {"variables": {}, "status": "skipped", "retries": 0}

    with pytest.raises(PermissionDenied, match="retrying a firing of user:mo's automation needs admin"):
        await registry(RetryFiring(automation_id=mine, event_id=failed), caller("member", "ned"))
    await registry(RetryFiring(automation_id=mine, event_id=failed), MEMBER)
    assert registry.appended()[-1].payload == FiringRetried(automation_id=mine, event_id=failed, scope="entity:acme")
    assert registry.read_models.launch.firings[mine, failed]["status"] == "pending"
    assert (await registry(RetryFiring(automation_id=mine, event_id=failed), MEMBER)).events == []  # already pending
    await registry(RetryFiring(automation_id=mine, event_id=skipped), ADMIN)

    with pytest.raises(Conflict, match="was enqueued"):
        await registry(RetryFiring(automation_id=mine, event_id=delivered), MEMBER)
    with pytest.raises(NotFound, match="did not fire for event"):
        await registry(RetryFiring(automation_id=mine, event_id=uuid7()), MEMBER)


async def test_a_firing_is_not_retried_while_its_automation_is_off_nor_shown_to_who_may_not_read_its_event() -> None:
    registry = WriteSide()
    mine = await launching(registry)
    event_id = uuid7()
    fired = RecordAutomationFired(automation_id=mine, event_id=event_id, event_type="x", outcome="failed")
    await registry(fired, caller("admin", str(mine), kind="automation"))
    await registry(SetAutomationEnabled(automation_id=mine, enabled=False), MEMBER)
    with pytest.raises(Conflict, match="is switched off: switch it on first"):
        await registry(RetryFiring(automation_id=mine, event_id=event_id), MEMBER)

    await registry(SetAutomationEnabled(automation_id=mine, enabled=True), MEMBER)
    registry.read_models.launch.firings[mine, event_id]["variables"] = {"registered_model": "secret-model"}
    not_let_in = dataclasses.replace(MEMBER, private=frozenset({"model:secret-model"}))
    with pytest.raises(NotFound, match="did not fire for event"):
        await registry(RetryFiring(automation_id=mine, event_id=event_id), not_let_in)
    await registry(RetryFiring(automation_id=mine, event_id=event_id), ADMIN)

    await registry(DeleteAutomation(automation_id=mine), MEMBER)
    with pytest.raises(Conflict, match="was deleted"):
        await registry(RetryFiring(automation_id=mine, event_id=event_id), ADMIN)


async def test_a_key_limited_to_its_team_automates_only_what_its_limits_reach() -> None:
    # Leaked, a CI key limited to acme watched a private model through an automation launching in acme: each alias
    # move became a job whose config carried the model's versions and who moved them.
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    ci_key = caller("member", "mo", limits=("entity:acme",))
    for trigger, watched in (
        ({"event": "alias_added", "registered_model": "secret"}, "model:secret"),
        ({"event": "run_finished"}, "every team and model"),
    ):
        with pytest.raises(PermissionDenied, match=f"limited to entity:acme; the trigger watches {watched}"):
            await registry(automation(LAUNCH, trigger), ci_key)
    await registry(automation(LAUNCH), ci_key)  # acme's own new versions


async def test_nobody_automates_a_watch_on_what_they_may_not_read() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="cpu"))
    outsider = dataclasses.replace(MEMBER, private=frozenset({"model:secret"}))
    on_secret = {"event": "alias_added", "registered_model": "secret"}
    with pytest.raises(PermissionDenied, match="model:secret is private and you may not read it"):
        await registry(automation(LAUNCH, on_secret), outsider)
    reader = dataclasses.replace(outsider, grants={"model:secret": "viewer"})
    await registry(automation(LAUNCH, on_secret), reader)


@pytest.mark.parametrize("pattern", ["latest", "^latest$", "(latest)", "latest|production"])
async def test_an_automation_waiting_for_the_alias_latest_to_be_added_is_refused_for_latest_is_never_added(
    pattern: str,
) -> None:
    registry = WriteSide()
    on_latest = {"event": "alias_added", "registered_model": "fraud", "alias_pattern": pattern}
    hook = {"kind": "webhook", "url": "https://93.184.216.34/hook"}
    with pytest.raises(InvalidInput, match="matches 'latest', which is never added .* use a version_linked trigger"):
        await registry(automation(hook, on_latest), MEMBER)
    created = await registry(automation(hook, {**on_latest, "alias_pattern": "candidate"}), MEMBER)
    with pytest.raises(InvalidInput, match="matches 'latest', which is never added"):
        await registry(
            ChangeAutomation(automation_id=created.subject_id, name="e", trigger=on_latest, action=hook), MEMBER
        )


@pytest.mark.parametrize("pattern", [".*", "lat.*", "latest.*", "[a-z]+", "candidate"])
async def test_an_alias_pattern_that_also_matches_aliases_people_add_is_taken(pattern: str) -> None:
    on_any = {"event": "alias_added", "registered_model": "fraud", "alias_pattern": pattern}
    await WriteSide()(automation({"kind": "webhook", "url": "https://93.184.216.34/hook"}, on_any), MEMBER)


async def test_an_automation_watching_a_model_not_registered_yet_is_taken_with_a_warning() -> None:
    registry = WriteSide()
    hook = {"kind": "webhook", "url": "https://93.184.216.34/hook"}
    typo = {"event": "alias_added", "registered_model": "frud", "alias_pattern": "candidate"}
    created = await registry(automation(hook, typo), MEMBER)
    assert created.warnings == (
        "no registered model frud exists yet: this automation fires once one is created with that name "
        "(check its spelling)",
    )
    assert registry.appended_types()[-1] == "automations.automation_created"
    version = await registry(
        LogArtifactVersion(
            entity="acme",
            project="fraud",
            name="weights",
            artifact_type="model",
            manifest=(registry.stored_file(b"w"),),
        )
    )
    await registry(LinkVersion(registered_model="fraud", artifact_version_id=version.subject_id))
    changed = await registry(
        ChangeAutomation(
            automation_id=created.subject_id, name="e", trigger={**typo, "registered_model": "fraud"}, action=hook
        ),
        MEMBER,
    )
    assert changed.warnings == ()
    on_a_collection = {
        "event": "artifact_version_logged",
        "entity": "acme",
        "project": "fraud",
        "collection": "wieghts",
    }
    watching = await registry(automation(hook, on_a_collection), MEMBER)
    assert watching.warnings == (
        "artifact collection acme/fraud/wieghts has no version yet: this automation fires once one is logged under "
        "that name (check its spelling)",
    )
    assert (await registry(automation(hook, {**on_a_collection, "collection": "weights"}), MEMBER)).warnings == ()

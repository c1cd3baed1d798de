"""Teams and private data on the write side: making an entity or a registered model private (or public again)
is an admin action recorded once; linking or using another team's private version needs viewer on that team,
unless the version is published into a registered model the caller reads; a key limited to scopes acts there
and nowhere else (docs/access.md)."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import pytest
from pydantic import ValidationError
from support.write_side import ADMIN, MEMBER, WriteSide, caller
from uuid_utils.compat import uuid7

from modelreg.errors import InvalidInput, NotFound, PermissionDenied
from modelreg.events.launch import JobSource
from modelreg.projections.readable import Readable
from modelreg.services.commands.commands import (
    IssueApiKey,
    LinkVersion,
    LogArtifactVersion,
    SetVisibility,
    StartRun,
    UseArtifactVersion,
)
from modelreg.services.commands.launch_commands import (
    CancelJob,
    ClaimJob,
    CreateAutomation,
    CreateQueue,
    EnqueueJob,
    SetAutomationEnabled,
)

LEA = caller("member", "lea", grants={"entity:lynx": "viewer"})  # reads the lynx team, writes elsewhere
SOURCE = JobSource(kind="git", git_remote="https://git.example.com/acme/train.git", entry_point=("python", "train.py"))


async def lynx_version(registry: WriteSide, content: bytes = b"lynx weights") -> UUID:
    """A version the lynx team logged, before or after lynx is private."""
    command = LogArtifactVersion(
        entity="lynx", project="den", name="net", artifact_type="model", manifest=(registry.stored_file(content),)
    )
    return (await registry(command)).subject_id


async def private_lynx(registry: WriteSide) -> UUID:
    version = await lynx_version(registry)
    await registry(SetVisibility(scope="entity:lynx", private=True))
    return version


async def test_making_an_entity_private_is_recorded_once_on_its_visibility_stream() -> None:
    registry = WriteSide()
    accepted = await registry(SetVisibility(scope="entity:lynx", private=True))
    [event] = accepted.events
    assert (event.type, event.stream, event.payload.scope) == (
        "identity.scope_made_private",
        "visibility:entity:lynx",
        "entity:lynx",
    )
    assert registry.read_models.identity.private == {"entity:lynx"}
    assert (await registry(SetVisibility(scope="entity:lynx", private=True))).events == []  # already private
    public = await registry(SetVisibility(scope="entity:lynx", private=False))
    assert [e.type for e in public.events] == ["identity.scope_made_public"]
    assert registry.read_models.identity.private == set()
    assert (await registry(SetVisibility(scope="entity:lynx", private=False))).events == []  # already public


async def test_the_admins_of_a_scope_switch_it_and_no_one_else() -> None:
    registry = WriteSide()
    team_admin = caller("member", "tia", grants={"entity:lynx": "admin"})
    registry_admin = caller("member", "rae", grants={"registry": "admin"})
    await registry(SetVisibility(scope="entity:lynx", private=True), registry.looked_up(team_admin))
    await registry(SetVisibility(scope="model:fraud", private=True), registry.looked_up(registry_admin))
    assert registry.read_models.identity.private == {"entity:lynx", "model:fraud"}
    with pytest.raises(PermissionDenied, match="user:mo is a member of entity:acme; set visibility needs admin"):
        await registry(SetVisibility(scope="entity:acme", private=True), MEMBER)
    # In a private scope a key's own role no longer holds: the member there holds nothing at all.
    with pytest.raises(PermissionDenied, match="entity:lynx is private and user:mo holds no role there"):
        await registry(SetVisibility(scope="entity:lynx", private=False), registry.looked_up(MEMBER))
    assert registry.read_models.identity.private == {"entity:lynx", "model:fraud"}


def test_only_an_entity_or_a_registered_model_can_be_private() -> None:
    for scope in ("registry", "queue:gpu", "entity:", "team:lynx"):
        with pytest.raises(ValidationError):
            SetVisibility(scope=scope, private=True)


async def test_linking_another_teams_private_version_needs_viewer_on_that_team() -> None:
    registry = WriteSide()
    version = await private_lynx(registry)
    # To who may not read it, the version does not exist, as for its reads: the refusal names no team.
    with pytest.raises(NotFound, match=f"^artifact version {version} does not exist: log it before linking it$"):
        await registry(LinkVersion(registered_model="shared", artifact_version_id=version), registry.looked_up(MEMBER))
    assert registry.read_models.registry.links == {}
    await registry(LinkVersion(registered_model="shared", artifact_version_id=version), registry.looked_up(LEA))
    assert await registry.read_models.registry.models_linking(version) == ["shared"]


async def published_and_not(registry: WriteSide) -> tuple[UUID, UUID]:
    """Two versions of the private lynx team, the first linked into the public model `shared`; and acme's run
    `eval` that may use them."""
    published = await private_lynx(registry)
    unpublished = await lynx_version(registry, b"lynx weights, unpublished")
    await registry(LinkVersion(registered_model="shared", artifact_version_id=published), registry.looked_up(LEA))
    await registry(StartRun(entity="acme", project="yard", run_id="eval"), MEMBER)
    return published, unpublished


async def test_a_published_version_is_used_by_the_models_readers_but_the_rest_of_the_team_is_not() -> None:
    registry = WriteSide()
    published, unpublished = await published_and_not(registry)
    outsider = registry.looked_up(MEMBER)
    use = UseArtifactVersion(artifact_version_id=published, entity="acme", project="yard", run_id="eval")
    assert (await registry(use, outsider)).events[0].type == "artifacts.version_used"
    with pytest.raises(NotFound, match=f"^artifact version {unpublished} does not exist$"):
        await registry(use.model_copy(update={"artifact_version_id": unpublished}), outsider)


async def test_a_public_runs_use_of_a_private_teams_unpublished_version_is_read_only_by_who_reads_that_team() -> None:
    registry = WriteSide()
    published, unpublished = await published_and_not(registry)
    lea = registry.looked_up(LEA)
    use = UseArtifactVersion(artifact_version_id=unpublished, entity="acme", project="yard", run_id="eval")
    (hidden,) = (await registry(use, lea)).events
    (shown,) = (await registry(use.model_copy(update={"artifact_version_id": published}), lea)).events
    assert hidden.payload.scopes == ("entity:lynx",) and shown.payload.scopes == ()
    outsider = Readable(hidden_entities=frozenset({"lynx"}))
    assert not outsider.event(hidden) and outsider.event(shown) and Readable().event(hidden)


async def test_a_command_id_sent_again_with_another_teams_private_version_is_refused_not_answered() -> None:
    registry = WriteSide()
    private = await private_lynx(registry)
    outsider = registry.looked_up(MEMBER)
    start = StartRun(entity="acme", project="yard", run_id="eval", command_id=uuid7())
    await registry(start, outsider)
    for replayed in (
        UseArtifactVersion(
            artifact_version_id=private, entity="acme", project="yard", run_id="eval", command_id=start.command_id
        ),
        LinkVersion(registered_model="shared", artifact_version_id=private, command_id=start.command_id),
    ):
        with pytest.raises(NotFound, match=f"artifact version {private} does not exist"):
            await registry(replayed, outsider)


async def test_a_version_published_only_into_a_private_model_stays_hidden_from_that_models_outsiders() -> None:
    registry = WriteSide()
    version = await private_lynx(registry)
    await registry(LinkVersion(registered_model="lynx-models", artifact_version_id=version), registry.looked_up(LEA))
    await registry(SetVisibility(scope="model:lynx-models", private=True))
    await registry(StartRun(entity="acme", project="yard", run_id="eval"), MEMBER)
    use = UseArtifactVersion(artifact_version_id=version, entity="acme", project="yard", run_id="eval")
    with pytest.raises(NotFound, match=f"artifact version {version} does not exist"):
        await registry(use, registry.looked_up(MEMBER))
    model_reader = caller("member", "mo", grants={"model:lynx-models": "viewer"})
    await registry(use, registry.looked_up(model_reader))


async def test_a_key_limited_to_scopes_records_them_once() -> None:
    registry = WriteSide()
    command = IssueApiKey(
        principal_kind="service", principal_id="ci", limited_to=("model:shared", "queue:gpu", "model:shared")
    )
    key = (await registry(command)).subject_id
    [event] = registry.appended()
    assert event.payload.scopes == ("model:shared", "queue:gpu")
    assert registry.read_models.identity.keys[key.split("_")[1]]["scopes"] == ["model:shared", "queue:gpu"]
    with pytest.raises(ValidationError):
        IssueApiKey(principal_kind="service", principal_id="ci", limited_to=("team:lynx",))


async def test_a_key_limited_to_one_model_links_there_and_nowhere_else() -> None:
    registry = WriteSide()
    version = (
        await registry(
            LogArtifactVersion(
                entity="acme", project="yard", name="net", artifact_type="model", manifest=(registry.stored_file(b"w"),)
            )
        )
    ).subject_id
    ci = caller("member", "ci", kind="service", limits=("model:shared",))
    await registry(LinkVersion(registered_model="shared", artifact_version_id=version), ci)
    with pytest.raises(PermissionDenied, match="the key in use is limited to model:shared; link version acts on"):
        await registry(LinkVersion(registered_model="other", artifact_version_id=version), ci)
    # Limited to the registry: every registered model, and still not an entity's runs.
    release = caller("member", "release", kind="service", limits=("registry",))
    await registry(LinkVersion(registered_model="other", artifact_version_id=version), release)
    with pytest.raises(PermissionDenied, match="limited to registry"):
        await registry(StartRun(entity="acme", project="yard", run_id="r1"), release)


async def test_an_agents_key_limited_to_its_queue_and_team_claims_those_jobs_only() -> None:
    registry = WriteSide()
    jobs = {}
    for queue in ("gpu", "cpu"):
        await registry(CreateQueue(queue=queue), ADMIN)
        enqueue = EnqueueJob(queue=queue, entity="acme", project="fraud", source=SOURCE)
        jobs[queue] = (await registry(enqueue, MEMBER)).subject_id
    agent = caller("member", "gpu-pool", kind="service", limits=("queue:gpu", "entity:acme"))
    await registry(ClaimJob(job_id=jobs["gpu"], agent_id="service:gpu-pool:host-1"), agent)
    with pytest.raises(PermissionDenied, match="limited to queue:gpu, entity:acme; claiming a job on queue 'cpu'"):
        await registry(ClaimJob(job_id=jobs["cpu"], agent_id="service:gpu-pool:host-1"), agent)
    queue_only = caller("member", "gpu-pool", kind="service", limits=("queue:gpu",))
    another = (
        await registry(EnqueueJob(queue="gpu", entity="acme", project="fraud", source=SOURCE), MEMBER)
    ).subject_id
    with pytest.raises(PermissionDenied, match="limited to queue:gpu; claiming a job of entity 'acme'"):
        await registry(ClaimJob(job_id=another, agent_id="service:gpu-pool:host-1"), queue_only)


async def test_a_private_teams_job_or_automation_does_not_exist_for_an_outsiders_commands() -> None:
    registry = WriteSide()
    await registry(CreateQueue(queue="gpu"), ADMIN)
    job = (await registry(EnqueueJob(queue="gpu", entity="lynx", project="den", source=SOURCE), ADMIN)).subject_id
    await registry(SetVisibility(scope="entity:lynx", private=True))
    outsider = registry.looked_up(caller("member", "pool", kind="service"))
    for command in (ClaimJob(job_id=job, agent_id="service:pool"), CancelJob(job_id=job)):
        with pytest.raises(NotFound, match=f"^job {job} does not exist$"):  # as for its reads: no team named
            await registry(command, outsider)
    team_pool = registry.looked_up(caller("member", "lynx-pool", kind="service", grants={"entity:lynx": "member"}))
    await registry(ClaimJob(job_id=job, agent_id="service:lynx-pool"), team_pool)

    watching = CreateAutomation(
        name="notify",
        trigger={"event": "alias_added", "entity": "lynx"},
        action={"kind": "webhook", "url": "https://93.184.216.34/hook"},
    )
    automation = (await registry(watching, ADMIN)).subject_id
    with pytest.raises(NotFound, match=f"^automation {automation} does not exist$"):
        await registry(SetAutomationEnabled(automation_id=automation, enabled=False), outsider)


def test_a_limited_key_uploads_files_only_where_it_may_write() -> None:
    assert caller("member", "ci", limits=("model:shared",)).writes_somewhere()
    assert not caller("viewer", "ci", limits=("model:shared",)).writes_somewhere()
    # Limited to a private team it holds no grant in: a member key writes nothing anywhere.
    in_lynx_only = replace(caller("member", "ci", limits=("entity:lynx",)), private=frozenset({"entity:lynx"}))
    assert not in_lynx_only.writes_somewhere()


async def test_a_file_only_a_private_team_holds_is_listed_elsewhere_only_by_who_sent_its_bytes() -> None:
    registry = WriteSide()
    await private_lynx(registry)
    weights = registry.stored_file(b"lynx weights")  # its digest and size are all the outsider knows
    outsider, reader = registry.looked_up(MEMBER), registry.looked_up(LEA)
    peek = LogArtifactVersion(entity="acme", project="yard", name="peek", artifact_type="model", manifest=(weights,))
    # To the outsider the store lacks it, as HEAD /blobs says: the same answer as for a file nobody sent.
    with pytest.raises(InvalidInput, match=f"the blob store has no {weights.digest}: upload each file"):
        await registry(peek, outsider)
    # Who reads lynx may list it; the outsider may once it has sent those bytes itself (the store verified them).
    await registry(peek, reader)
    registry.blobs.holders[weights.digest] = {outsider.holder}
    await registry(peek.model_copy(update={"name": "own-copy"}), outsider)

"""The registry's moves: linking versions to a registered model, its aliases (protected ones are moved by
the model's admins only), its card and tags."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import pytest
from pydantic import ValidationError
from support.write_side import ADMIN, MEMBER, VIEWER, WriteSide, caller
from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, NotFound, PermissionDenied
from modelreg.services.commands.commands import (
    AddAlias,
    LinkVersion,
    LogArtifactVersion,
    ModelCardText,
    ProtectAlias,
    RemoveAlias,
    TagModel,
    UnlinkVersion,
    UnprotectAlias,
    UntagModel,
    UpdateModelCard,
)


async def logged(registry: WriteSide, content: bytes = b"weights") -> UUID:
    command = LogArtifactVersion(
        entity="acme", project="fraud", name="weights", artifact_type="model", manifest=(registry.stored_file(content),)
    )
    return (await registry(command)).subject_id


async def linked(registry: WriteSide, *aliases: str, content: bytes = b"weights") -> UUID:
    version = await logged(registry, content)
    await registry(LinkVersion(registered_model="fraud", artifact_version_id=version, aliases=aliases))
    return version


async def production_protected(registry: WriteSide) -> UUID:
    version = await linked(registry, "production")
    await registry(ProtectAlias(registered_model="fraud", alias="production"))
    return version


async def test_linking_a_version_records_who_and_the_aliases_it_gets_as_one_correlated_move() -> None:
    registry = WriteSide()
    version = await logged(registry)
    accepted = await registry(
        LinkVersion(registered_model="fraud", artifact_version_id=version, aliases=("staging", "best", "staging")),
        MEMBER,
    )
    link, *aliases = accepted.events
    assert [e.type for e in accepted.events] == [
        "registry.version_linked",
        "registry.alias_added",
        "registry.alias_added",
    ]
    assert [e.payload.alias for e in aliases] == ["staging", "best"]
    assert {e.correlation_id for e in accepted.events} == {link.id}
    assert str(link.actor) == "user:mo" and link.stream == "registered_model:fraud"
    assert registry.read_models.registry.links["fraud", version]["version_index"] == 0


async def test_linking_a_version_that_was_never_logged_says_log_it_first() -> None:
    with pytest.raises(NotFound, match="log it before linking it"):
        await WriteSide()(LinkVersion(registered_model="fraud", artifact_version_id=uuid7()))


async def test_linking_again_only_sets_the_new_aliases() -> None:
    registry = WriteSide()
    version = await linked(registry)
    again = await registry(LinkVersion(registered_model="fraud", artifact_version_id=version, aliases=("best",)))
    assert [e.type for e in again.events] == ["registry.alias_added"]


async def test_a_recorded_link_sent_again_appends_nothing() -> None:
    registry = WriteSide()
    version = await logged(registry)
    link = LinkVersion(registered_model="fraud", artifact_version_id=version, command_id=uuid7())
    await registry(link)
    assert (await registry(link)).events == []


async def test_a_viewer_may_not_link() -> None:
    registry = WriteSide()
    version = await logged(registry)
    with pytest.raises(PermissionDenied, match="user:vi is a viewer of model:fraud; link version needs member"):
        await registry(LinkVersion(registered_model="fraud", artifact_version_id=version), VIEWER)


async def test_a_grant_on_the_model_lets_a_viewer_key_link_there() -> None:
    registry = WriteSide()
    version = await logged(registry)
    trusted = caller("viewer", "val", grants={"model:fraud": "member"})
    await registry(LinkVersion(registered_model="fraud", artifact_version_id=version), trusted)


async def test_an_alias_is_set_on_a_linked_version_and_moves_to_it() -> None:
    registry = WriteSide()
    first = await linked(registry, "staging")
    second = await linked(registry, content=b"better")
    moved = await registry(AddAlias(registered_model="fraud", artifact_version_id=second, alias="staging"), MEMBER)
    assert moved.subject_id == second
    assert registry.read_models.registry.aliases["fraud", "staging"] == second != first


async def test_setting_an_alias_where_it_is_appends_nothing() -> None:
    registry = WriteSide()
    version = await linked(registry, "staging")
    assert (
        await registry(AddAlias(registered_model="fraud", artifact_version_id=version, alias="staging"))
    ).events == []


async def test_an_alias_goes_on_a_linked_version_only() -> None:
    registry = WriteSide()
    version = await logged(registry)
    with pytest.raises(NotFound, match="is not linked to 'fraud': link it first"):
        await registry(AddAlias(registered_model="fraud", artifact_version_id=version, alias="staging"))


async def test_removing_an_alias_the_model_does_not_have() -> None:
    with pytest.raises(NotFound, match="'fraud' has no alias 'staging'"):
        await WriteSide()(RemoveAlias(registered_model="fraud", alias="staging"))


async def test_removing_an_alias_names_the_version_it_was_on() -> None:
    registry = WriteSide()
    version = await linked(registry, "staging")
    removed = await registry(RemoveAlias(registered_model="fraud", alias="staging"), MEMBER)
    assert removed.subject_id == version and removed.events[0].payload.artifact_version_id == version


async def test_a_protected_alias_is_moved_removed_or_unlinked_by_the_models_admins_only() -> None:
    registry = WriteSide()
    version = await production_protected(registry)
    other = await linked(registry, content=b"other")
    refusals = [
        (LinkVersion(registered_model="fraud", artifact_version_id=other, aliases=("production",)), "setting"),
        (AddAlias(registered_model="fraud", artifact_version_id=other, alias="production"), "setting"),
        (RemoveAlias(registered_model="fraud", alias="production"), "removing"),
        (UnlinkVersion(registered_model="fraud", artifact_version_id=version), "unlinking the version that holds"),
    ]
    for command, doing in refusals:
        with pytest.raises(PermissionDenied, match=f"{doing} protected alias 'production' needs admin"):
            await registry(command, MEMBER)
    model_admin = caller("member", "mia", grants={"model:fraud": "admin"})
    await registry(AddAlias(registered_model="fraud", artifact_version_id=other, alias="production"), model_admin)
    assert registry.read_models.registry.aliases["fraud", "production"] == other


async def test_a_launch_jobs_key_refused_a_protected_alias_is_told_why_no_grant_helps() -> None:
    # Its agent ran with an admin's key; the job's own key is a member at most, and "ask for a grant" sent its
    # author to grant the admin what it already held.
    registry = WriteSide()
    await production_protected(registry)
    other = await linked(registry, content=b"other")
    job = uuid7()
    jobs_key = replace(caller("admin", "ada"), job_id=job)
    with pytest.raises(PermissionDenied, match=f"attempt of Launch job {job}: a job's key is a member at most"):
        await registry(AddAlias(registered_model="fraud", artifact_version_id=other, alias="production"), jobs_key)


async def test_a_member_moves_the_unprotected_aliases_of_a_model_with_protected_ones() -> None:
    registry = WriteSide()
    version = await production_protected(registry)
    await registry(AddAlias(registered_model="fraud", artifact_version_id=version, alias="staging"), MEMBER)


async def test_unlinking_takes_the_versions_aliases_with_it() -> None:
    registry = WriteSide()
    version = await linked(registry, "staging")
    await registry(UnlinkVersion(registered_model="fraud", artifact_version_id=version), MEMBER)
    assert registry.read_models.registry.aliases == {}
    with pytest.raises(NotFound, match="is not linked to 'fraud'"):
        await registry(UnlinkVersion(registered_model="fraud", artifact_version_id=version))


async def test_unlinking_tells_alias_watchers_each_alias_it_takes_away_before_the_unlink() -> None:
    # A deploy watcher follows alias moves only: told nothing, it kept the unlinked version as production.
    registry = WriteSide()
    version = await linked(registry, "production", "best")
    unlinked = await registry(UnlinkVersion(registered_model="fraud", artifact_version_id=version), MEMBER)
    assert [(e.type, getattr(e.payload, "alias", None)) for e in unlinked.events] == [
        ("registry.alias_removed", "best"),
        ("registry.alias_removed", "production"),
        ("registry.version_unlinked", None),
    ]
    assert {e.payload.artifact_version_id for e in unlinked.events} == {version}
    assert {e.correlation_id for e in unlinked.events} == {unlinked.events[0].id}
    assert registry.read_models.registry.aliases == {}


async def test_unlinking_a_version_without_aliases_appends_the_unlink_only() -> None:
    registry = WriteSide()
    version = await linked(registry)
    unlinked = await registry(UnlinkVersion(registered_model="fraud", artifact_version_id=version))
    assert [e.type for e in unlinked.events] == ["registry.version_unlinked"]


async def test_protecting_an_alias_needs_the_model_and_an_admin() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="registered model 'fraud' does not exist: link a version to it first"):
        await registry(ProtectAlias(registered_model="fraud", alias="production"))
    await linked(registry)
    with pytest.raises(PermissionDenied, match="protect alias needs admin"):
        await registry(ProtectAlias(registered_model="fraud", alias="production"), MEMBER)
    await registry(ProtectAlias(registered_model="fraud", alias="production"), ADMIN)
    assert (await registry(ProtectAlias(registered_model="fraud", alias="production"))).events == []


async def test_unprotecting_an_alias_that_is_not_protected() -> None:
    registry = WriteSide()
    await production_protected(registry)
    await registry(UnprotectAlias(registered_model="fraud", alias="production"))
    assert registry.read_models.registry.protected["fraud"] == set()
    with pytest.raises(NotFound, match="alias 'production' of 'fraud' is not protected"):
        await registry(UnprotectAlias(registered_model="fraud", alias="production"))


async def test_the_model_card_says_what_it_does() -> None:
    registry = WriteSide()
    card = UpdateModelCard(registered_model="fraud", description="# Fraud", inputs="a transaction")
    assert (await registry(card, MEMBER)).subject_id == "fraud"
    assert registry.read_models.registry.models["fraud"]["description"] == "# Fraud"


async def test_a_new_description_keeps_the_cards_inputs_and_outputs_unless_they_are_given() -> None:
    # Two people editing a card: one who changed only the description erased what the other wrote of its inputs.
    registry = WriteSide()
    await registry(UpdateModelCard(registered_model="fraud", description="v1", inputs="224x224 RGB", outputs="scores"))
    await registry(UpdateModelCard(registered_model="fraud", description="v2"), MEMBER)
    model = registry.read_models.registry.models["fraud"]
    assert (model["description"], model["inputs"], model["outputs"]) == ("v2", "224x224 RGB", "scores")
    await registry(UpdateModelCard(registered_model="fraud", description="v3", outputs=""), MEMBER)
    assert (registry.read_models.registry.models["fraud"]["inputs"], model["outputs"]) == ("224x224 RGB", "")


async def test_a_card_edited_from_what_an_editor_read_is_refused_once_a_colleague_changed_it() -> None:
    registry = WriteSide()
    await registry(UpdateModelCard(registered_model="fraud", description="v1", inputs="224x224 RGB"))
    read = ModelCardText(description="v1", inputs="224x224 RGB")
    await registry(UpdateModelCard(registered_model="fraud", description="v1 by ada", edited_from=read), MEMBER)

    zoe = UpdateModelCard(registered_model="fraud", description="v1", outputs="scores", edited_from=read)
    with pytest.raises(Conflict, match="card of 'fraud' changed since it was read for this edit: read it again"):
        await registry(zoe, MEMBER)
    assert registry.read_models.registry.models["fraud"]["description"] == "v1 by ada"
    # Sent again after its answer was lost, an edit saved already changes nothing.
    again = UpdateModelCard(registered_model="fraud", description="v1 by ada", edited_from=read)
    assert (await registry(again, MEMBER)).events == []
    assert registry.appended_types().count("registry.model_card_changed") == 2


async def test_a_model_is_tagged_once_and_untagged_when_it_has_the_tag() -> None:
    registry = WriteSide()
    with pytest.raises(NotFound, match="'fraud' has no tag 'gbm'"):
        await registry(UntagModel(registered_model="fraud", tag="gbm"))
    await registry(TagModel(registered_model="fraud", tag="gbm"))
    assert (await registry(TagModel(registered_model="fraud", tag="gbm"))).events == []
    await registry(UntagModel(registered_model="fraud", tag="gbm"))
    with pytest.raises(NotFound, match="has no tag"):
        await registry(UntagModel(registered_model="fraud", tag="gbm"))


def test_one_command_sets_a_hundred_aliases_at_most() -> None:
    # Each alias linked is an event every projection applies: 90,000 in one link held them all back for 40 s.
    version = uuid7()
    LinkVersion(registered_model="fraud", artifact_version_id=version, aliases=tuple(f"a{n}" for n in range(100)))
    with pytest.raises(ValidationError, match="aliases\n  Tuple should have at most 100 items"):
        LinkVersion(registered_model="fraud", artifact_version_id=version, aliases=tuple(f"a{n}" for n in range(101)))

"""Command handlers: check a command against the read models and decide which events it becomes.

They do not append: the application service appends what they decide, then waits for the projections
(read-your-writes). A refusal is a ModelregError with a message the caller can act on.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from modelreg.errors import Conflict, InvalidInput, NotFound, Unavailable, quoted
from modelreg.events.artifacts import (
    ArtifactVersionDeleted,
    ArtifactVersionEdited,
    ArtifactVersionLogged,
    ArtifactVersionTagged,
    ArtifactVersionUntagged,
    ArtifactVersionUsed,
    ManifestEntry,
    artifact_stream,
)
from modelreg.events.envelope import Actor, Envelope
from modelreg.events.identity import (
    ApiKeyIssued,
    ApiKeyRevoked,
    RoleGranted,
    RoleRevoked,
    ScopeMadePrivate,
    ScopeMadePublic,
    principal_stream,
    visibility_stream,
)
from modelreg.events.registry import (
    AliasAdded,
    AliasProtected,
    AliasRemoved,
    AliasUnprotected,
    ModelCardChanged,
    ModelTagged,
    ModelUntagged,
    VersionLinked,
    VersionUnlinked,
    registered_model_stream,
)
from modelreg.events.runs import (
    MetricSeries,
    MetricsLogged,
    RunAlerted,
    RunConfigUpdated,
    RunDescribed,
    RunFinished,
    RunHeartbeat,
    RunResumed,
    RunStarted,
    RunSummaryUpdated,
    RunSynced,
    run_stream,
    series_from_rows,
)
from modelreg.file_paths import one_file_twice
from modelreg.services.commands.access_warnings import granted_role_warnings, issued_key_warnings, revoked_key_warnings
from modelreg.services.commands.api_keys import key_sha256, new_api_key
from modelreg.services.commands.command_identity import already_accepted
from modelreg.services.commands.commands import (
    AddAlias,
    Command,
    DeleteArtifactVersion,
    DescribeRun,
    EditArtifactVersion,
    FinishRun,
    GrantRole,
    IssueApiKey,
    LinkVersion,
    LogArtifactVersion,
    LogMetricBatch,
    LogMetrics,
    ProtectAlias,
    RaiseAlert,
    RecordRunHeartbeat,
    RecordSync,
    RemoveAlias,
    ResumeRun,
    RevokeApiKey,
    RevokeRole,
    SetVisibility,
    StartRun,
    TagArtifactVersion,
    TagModel,
    UnlinkVersion,
    UnprotectAlias,
    UntagArtifactVersion,
    UntagModel,
    UpdateModelCard,
    UpdateRunConfig,
    UpdateRunSummary,
    UseArtifactVersion,
)
from modelreg.services.commands.decisions import CommandContext, Decision, Handler
from modelreg.services.commands.launch_handlers import LAUNCH_HANDLERS
from modelreg.services.commands.parked_streams import PARKED_STREAM_HANDLERS
from modelreg.services.commands.run_names import run_name


def _no_file_is_a_folder_of_another(paths: list[str]) -> None:
    """`d` and `d/x` in one version: no folder could be downloaded as both, and such a version never could."""
    listed = set(paths)
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in listed:
                raise InvalidInput(
                    f"the manifest lists {quoted(folder)} as a file and as a folder of {quoted(path)}: no "
                    "download could write both; rename one of them"
                )


def require_a_path_that_shows_as_it_is(path: str) -> None:
    """A file's path holds no control character (a line break splits a listing) and no formatting character
    (a right-to-left override shows `model\u202egnp.exe` as `modelexe.png`): what readers see and download is
    what was logged. Refused here, not in the event's type, so that events already on a log still read."""
    for char in path:
        if unicodedata.category(char) in ("Cc", "Cf"):
            name = unicodedata.name(char, "a control character")
            raise InvalidInput(
                f"file path {quoted(path)} holds {name} (U+{ord(char):04X}), which would show the path as another in "
                "listings and downloads: rename the file"
            )


def manifest_digest(manifest: tuple[ManifestEntry, ...]) -> str:
    """A version's identity: the digest of its sorted (path, size, digest[, ref]) entries. A reference's
    URI is part of it (the same bytes elsewhere are another version); plain files hash as they always did."""
    h = hashlib.sha256()
    for entry in sorted(manifest, key=lambda e: e.path):
        ref = f"\t{entry.ref}" if entry.ref is not None else ""
        h.update(f"{entry.path}\t{entry.size}\t{entry.digest}{ref}\n".encode())
    return "sha256:" + h.hexdigest()


async def require_stored_files(manifest: tuple[ManifestEntry, ...], ctx: CommandContext) -> None:
    """Each uploaded file of a manifest is in the blob store with the size it declares (one batched look-up);
    a reference's bytes are elsewhere and are not checked.

    A file that only versions hidden from the caller list counts as stored only if the caller sent its bytes
    (the store keeps who did): otherwise whoever learnt a private file's digest and size could list it in a
    version of their own and download it from there. To that caller it is missing, as HEAD /blobs says."""
    uploaded = [entry for entry in manifest if entry.ref is None]
    if not uploaded:
        return
    if ctx.blobs is None:
        raise Unavailable("this process has no blob store to check manifests: log artifact versions through the API")
    sizes = await ctx.blobs.sizes({entry.digest for entry in uploaded})
    hidden = await ctx.reads.registry.files_hidden(sizes.keys(), ctx.caller.readable())
    if hidden:
        for digest in hidden - await ctx.blobs.held_by(hidden, ctx.caller.holder):
            del sizes[digest]
    missing = [entry for entry in uploaded if entry.digest not in sizes]
    wrong = [entry for entry in uploaded if entry.digest in sizes and sizes[entry.digest] != entry.size]
    more = len(missing) + len(wrong) - 1
    others = f" (and {more} other file(s) likewise)" if more > 0 else ""
    if missing:
        entry = missing[0]
        raise InvalidInput(
            f"manifest file {quoted(entry.path)}: the blob store has no {entry.digest}{others}: upload each file "
            f"(PUT /blobs/<digest>, which the client does) before logging the version that lists it"
        )
    if wrong:
        entry = wrong[0]
        raise InvalidInput(
            f"manifest file {quoted(entry.path)} declares {entry.size} bytes, but its stored blob {entry.digest} has "
            f"{sizes[entry.digest]}{others}: declare the size of the file that was uploaded"
        )


async def start_run(cmd: StartRun, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    if await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id):
        # Refused rather than written over (W&B's way): the run's history and summary stay whole.
        raise Conflict(
            f"run {cmd.entity}/{cmd.project}/{cmd.run_id} already exists: choose another run id, or continue this "
            f"run: modelreg.init(id={cmd.run_id!r}, resume='allow'), or WANDB_RESUME=allow (MODELREG_RESUME=allow) "
            "beside WANDB_RUN_ID"
        )
    facts = cmd.facts()
    if cmd.name is None:
        facts["name"] = run_name(cmd.run_id, await ctx.reads.registry.runs_in_project(cmd.entity, cmd.project))
    payload = RunStarted(**facts)
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def finish_run(cmd: FinishRun, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    run = await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id)
    if run is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} does not exist: start it first")
    # A run marked crashed (silent too long) whose process ends after all records how it ended.
    if run["state"] not in ("running", "crashed"):
        raise Conflict(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} is already {run['state']}")
    payload = RunFinished(**cmd.facts())
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def log_metrics(cmd: LogMetrics, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], len(cmd.rows))
    run = await _run_to_log_to(cmd, ctx)
    rows = [row.model_dump() for row in cmd.rows]
    payload = MetricsLogged(
        entity=cmd.entity,
        project=cmd.project,
        run_id=cmd.run_id,
        series=tuple(MetricSeries.model_validate(s) for s in series_from_rows(rows)),
    )
    return Decision(
        [*_alive_again(run, cmd, ctx), ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))],
        len(cmd.rows),
    )


async def log_metric_batch(cmd: LogMetricBatch, ctx: CommandContext) -> Decision:
    """Returns how many points the batch has."""
    points = sum(len(s.values) for s in cmd.series)
    if await already_accepted(cmd, ctx):
        return Decision([], points)
    run = await _run_to_log_to(cmd, ctx)
    payload = MetricsLogged(**cmd.facts())
    return Decision(
        [*_alive_again(run, cmd, ctx), ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], points
    )


async def _run_to_log_to(cmd: LogMetrics | LogMetricBatch, ctx: CommandContext) -> dict[str, Any]:
    """A run that may take points: one that ended has a history its end was judged on (its summary, the
    automations its finish set off), so points after it come through a resume, which the history records."""
    run = await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id)
    if run is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} does not exist: start it first")
    if run["state"] not in ("running", "crashed"):
        raise Conflict(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} is {run['state']}: resume it to log to it again")
    return run


def _alive_again(
    run: dict[str, Any], cmd: LogMetrics | LogMetricBatch | RecordRunHeartbeat, ctx: CommandContext
) -> list[Envelope]:
    """A run marked crashed (services/automations/crashed_runs.py) that is heard from again is running: it was
    cut off, not dead (an outage of the API, a partitioned node)."""
    if run["state"] != "crashed":
        return []
    of_run = {"entity": cmd.entity, "project": cmd.project, "run_id": cmd.run_id}
    stream = run_stream(cmd.entity, cmd.project, cmd.run_id)
    # Then a beat: the resume forgets the last one, and a run with none is never marked crashed again.
    return [ctx.event(RunResumed(**of_run), stream), ctx.event(RunHeartbeat(**of_run), stream)]


async def log_artifact_version(cmd: LogArtifactVersion, ctx: CommandContext) -> Decision:
    paths = [entry.path for entry in cmd.manifest]
    if len(set(paths)) != len(paths):
        raise InvalidInput("the manifest lists a file path twice: each path may appear once")
    for path in paths:
        require_a_path_that_shows_as_it_is(path)
    _no_file_is_a_folder_of_another(paths)
    # Refused here, not in the event's type, so that versions already on a log still read: a download refuses them.
    if (collision := one_file_twice(paths)) is not None:
        raise InvalidInput(
            f"the manifest lists {collision}: a download there writes one over the other, so a reader may get "
            "another's bytes; rename one of them"
        )
    # Sent again after its answer was lost: the version it made, whatever was logged since (made again, it moved
    # `latest` back onto its content).
    if (earlier := await already_accepted(cmd, ctx, subject="artifact_version_id")) and earlier.subject:
        return Decision([], UUID(earlier.subject))
    await require_stored_files(cmd.manifest, ctx)
    if cmd.run_id is not None and await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id) is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} does not exist: log from a started run")
    digest = manifest_digest(cmd.manifest)
    if cmd.artifact_version_id is not None:
        existing = await ctx.reads.registry.artifact_version(cmd.artifact_version_id)
        if existing is not None:
            same = (existing["entity"], existing["project"], existing["name"], existing["digest"])
            if same != (cmd.entity, cmd.project, cmd.name, digest):
                raise Conflict(
                    f"artifact version {cmd.artifact_version_id} already exists with other content: "
                    "a client-chosen id names one version only, choose a new one"
                )
            return Decision([], existing["id"])  # sent again (a repeated sync): that version
    latest = await ctx.reads.registry.artifact_version_by_ref(cmd.entity, cmd.project, cmd.name, "latest")
    if latest is not None:
        if latest["artifact_type"] != cmd.artifact_type:
            raise Conflict(
                f"artifact {cmd.entity}/{cmd.project}/{cmd.name} has type {latest['artifact_type']!r}, "
                f"not {quoted(cmd.artifact_type)}: use another name"
            )
        if latest["digest"] == digest:  # same content as the newest version: no new version, yet the aliases asked for
            return await _aliases_of_a_version_logged_again(cmd, latest, ctx)
    version_id = cmd.artifact_version_id or uuid7()
    payload = ArtifactVersionLogged(
        artifact_version_id=version_id,
        entity=cmd.entity,
        project=cmd.project,
        name=cmd.name,
        artifact_type=cmd.artifact_type,
        digest=digest,
        manifest=cmd.manifest,
        description=cmd.description,
        metadata=cmd.metadata,
        aliases=cmd.aliases,
        logged_by_run=cmd.run_id,
    )
    return Decision([ctx.event(payload, artifact_stream(cmd.entity, cmd.project, cmd.name))], version_id)


async def _aliases_of_a_version_logged_again(
    cmd: LogArtifactVersion, latest: dict[str, Any], ctx: CommandContext
) -> Decision:
    """A checkpoint logged each epoch with `aliases=["best"]`, its files unchanged, gets `best` as W&B gives it:
    dropping the aliases of a version logged again lost them without a word."""
    added = tuple(alias for alias in dict.fromkeys(cmd.aliases) if alias not in latest["aliases"])
    # (Sent again, a retry or a second sync, it was answered before this: it puts back no alias moved away since.)
    if not added:
        return Decision([], latest["id"])
    if not cmd.in_the_turn_taken(latest["id"]):
        raise Conflict(
            f"the newest version of {cmd.entity}/{cmd.project}/{cmd.name} changed while this command waited, so it "
            "was not carried out (nothing was written): send it again",
            retriable=True,
        )
    return _version_edited(cmd, latest["id"], ctx, aliases_added=added)


def _version_edited(
    cmd: LogArtifactVersion | EditArtifactVersion, version_id: UUID, ctx: CommandContext, **changes: Any
) -> Decision:
    """An ArtifactVersionEdited of `changes` (description, metadata, aliases_added, aliases_removed) to a version
    of `cmd`'s collection."""
    edit = {"description": None, "metadata": None, "aliases_added": (), "aliases_removed": ()} | changes
    payload = ArtifactVersionEdited(
        artifact_version_id=version_id, entity=cmd.entity, project=cmd.project, name=cmd.name, **edit
    )
    return Decision([ctx.event(payload, artifact_stream(cmd.entity, cmd.project, cmd.name))], version_id)


async def use_artifact_version(cmd: UseArtifactVersion, ctx: CommandContext) -> Decision:
    # Readability first, even for a command sent again: the answer shows the version its input names, to a caller
    # who may have lost the right to read it since.
    version = await ctx.reads.registry.artifact_version(cmd.artifact_version_id)
    missing = f"artifact version {cmd.artifact_version_id} does not exist"
    if version is None:
        raise NotFound(missing)
    await ctx.require_readable_version(version, missing)
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.artifact_version_id)
    if await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id) is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} does not exist")
    payload = ArtifactVersionUsed(**cmd.facts(), scopes=await _read_only_in(version, cmd.entity, ctx))
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.artifact_version_id)


async def _read_only_in(version: dict[str, Any], run_entity: str, ctx: CommandContext) -> tuple[str, ...]:
    """Where else a run's use of a version is read: in the version's entity, when that is private and not the run's
    and the version is published in no public registered model (whose readers read it anyway). A public run's
    readers would otherwise see the id of another team's private version. Decided at the use, as scopes are."""
    scope = f"entity:{version['entity']}"
    if version["entity"] == run_entity or scope not in (private := await ctx.reads.identity.private_scopes()):
        return ()
    models = await ctx.reads.registry.models_linking(version["id"])
    return () if any(f"model:{model}" not in private for model in models) else (scope,)


async def link_version(cmd: LinkVersion, ctx: CommandContext) -> Decision:
    version = await ctx.reads.registry.artifact_version(cmd.artifact_version_id)
    missing = f"artifact version {cmd.artifact_version_id} does not exist: log it before linking it"
    if version is None:
        raise NotFound(missing)
    # Publishing into a registry lets the model's readers read the version: only who reads it may publish it.
    # Checked before a command sent again is recognised, as in use_artifact_version.
    await ctx.require_readable_version(version, missing)
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.artifact_version_id)
    if version.get("deleted_at") is not None:
        raise NotFound(f"artifact version {cmd.artifact_version_id} was deleted: log it again to link it")
    await ctx.require_admin_for_protected(cmd.registered_model, cmd.aliases, "setting")
    stream = registered_model_stream(cmd.registered_model)
    events = []
    if await ctx.reads.registry.model_version_of(cmd.registered_model, cmd.artifact_version_id) is None:
        events.append(
            ctx.event(
                VersionLinked(registered_model=cmd.registered_model, artifact_version_id=cmd.artifact_version_id),
                stream,
            )
        )
    for alias in dict.fromkeys(cmd.aliases):
        payload = AliasAdded(
            registered_model=cmd.registered_model, artifact_version_id=cmd.artifact_version_id, alias=alias
        )
        events.append(ctx.event(payload, stream))
    return Decision(events, cmd.artifact_version_id)


async def add_alias(cmd: AddAlias, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):  # sent again: it does not move back an alias another moved since
        return Decision([], cmd.artifact_version_id)
    if await ctx.reads.registry.model_version_of(cmd.registered_model, cmd.artifact_version_id) is None:
        raise NotFound(
            f"artifact version {cmd.artifact_version_id} is not linked to {quoted(cmd.registered_model)}: link it first"
        )
    await ctx.require_admin_for_protected(cmd.registered_model, (cmd.alias,), "setting")
    if await ctx.reads.registry.alias_target(cmd.registered_model, cmd.alias) == cmd.artifact_version_id:
        return Decision([], cmd.artifact_version_id)
    payload = AliasAdded(**cmd.facts())
    return Decision([ctx.event(payload, registered_model_stream(cmd.registered_model))], cmd.artifact_version_id)


async def remove_alias(cmd: RemoveAlias, ctx: CommandContext) -> Decision:
    if (earlier := await already_accepted(cmd, ctx, subject="artifact_version_id")) and earlier.subject:
        return Decision([], UUID(earlier.subject))  # sent again: the version it took the alias off
    target = await ctx.reads.registry.alias_target(cmd.registered_model, cmd.alias)
    if target is None:
        raise NotFound(f"{quoted(cmd.registered_model)} has no alias {quoted(cmd.alias)}")
    await ctx.require_admin_for_protected(cmd.registered_model, (cmd.alias,), "removing")
    payload = AliasRemoved(registered_model=cmd.registered_model, artifact_version_id=target, alias=cmd.alias)
    return Decision([ctx.event(payload, registered_model_stream(cmd.registered_model))], target)


async def unlink_version(cmd: UnlinkVersion, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.artifact_version_id)
    if await ctx.reads.registry.model_version_of(cmd.registered_model, cmd.artifact_version_id) is None:
        raise NotFound(f"artifact version {cmd.artifact_version_id} is not linked to {quoted(cmd.registered_model)}")
    held = await ctx.reads.registry.aliases_of(cmd.registered_model, cmd.artifact_version_id)
    if not cmd.in_the_turns_taken(held):
        # An alias moved onto the version while this command waited for its turns: decided outside that alias's
        # turn, the unlink could take away an alias an admin was protecting beside it. Refused, not NOT_YET_VISIBLE
        # (which says it was accepted): nothing was written.
        raise Conflict(
            f"an alias of {quoted(cmd.registered_model)} moved onto this version while the unlink waited, so it was "
            "not carried out (nothing was written): send it again",
            retriable=True,
        )
    await ctx.require_admin_for_protected(cmd.registered_model, tuple(held), "unlinking the version that holds")
    stream = registered_model_stream(cmd.registered_model)
    # Each alias the version takes away is said first, in the same append: a consumer of alias moves (a deploy
    # watcher on `production`) was never told, and kept the unlinked version as the alias's holder.
    model, version = cmd.registered_model, cmd.artifact_version_id
    removed = [
        ctx.event(AliasRemoved(registered_model=model, artifact_version_id=version, alias=alias), stream)
        for alias in held
    ]
    unlinked = VersionUnlinked(registered_model=model, artifact_version_id=version)
    return Decision([*removed, ctx.event(unlinked, stream)], version)


async def update_model_card(cmd: UpdateModelCard, ctx: CommandContext) -> Decision:
    # Left out, inputs and outputs stay as they are (a new description erased them); "" clears one. The event
    # carries the whole card, as before.
    card = cmd.model_dump(exclude={"edited_from"})
    model = await ctx.reads.registry.registered_model(cmd.registered_model) or {}
    card["inputs"] = model.get("inputs") if cmd.inputs is None else cmd.inputs
    card["outputs"] = model.get("outputs") if cmd.outputs is None else cmd.outputs
    if cmd.edited_from is not None:
        now = _card_text(model)
        if now == _card_text(card):
            return Decision([], cmd.registered_model)  # this edit, saved already (its answer lost, sent again)
        if now != _card_text(cmd.edited_from.model_dump()):
            raise Conflict(
                f"the model card of {quoted(cmd.registered_model)} changed since it was read for this edit: read it "
                "again and make the edit on it (saving would erase the other change)"
            )
    payload = ModelCardChanged(**card)
    return Decision([ctx.event(payload, registered_model_stream(cmd.registered_model))], cmd.registered_model)


def _card_text(card: dict[str, Any]) -> tuple[str, str, str]:
    return card.get("description") or "", card.get("inputs") or "", card.get("outputs") or ""


async def tag_model(cmd: TagModel, ctx: CommandContext) -> Decision:
    model = await ctx.reads.registry.registered_model(cmd.registered_model)
    if model is not None and cmd.tag in model["tags"]:
        return Decision([], cmd.registered_model)
    payload = ModelTagged(**cmd.model_dump())
    return Decision([ctx.event(payload, registered_model_stream(cmd.registered_model))], cmd.registered_model)


async def untag_model(cmd: UntagModel, ctx: CommandContext) -> Decision:
    model = await ctx.reads.registry.registered_model(cmd.registered_model)
    if model is None or cmd.tag not in model["tags"]:
        raise NotFound(f"{quoted(cmd.registered_model)} has no tag {quoted(cmd.tag)}")
    payload = ModelUntagged(**cmd.model_dump())
    return Decision([ctx.event(payload, registered_model_stream(cmd.registered_model))], cmd.registered_model)


async def record_sync(cmd: RecordSync, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    if await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id) is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} does not exist: sync its start first")
    payload = RunSynced(**cmd.facts())
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def issue_api_key(cmd: IssueApiKey, ctx: CommandContext) -> Decision:
    """The key is the Decision's subject: returned once to the caller, only its hash goes on the log."""
    key_id, key = new_api_key()
    principal = Actor(kind=cmd.principal_kind, id=cmd.principal_id)
    payload = ApiKeyIssued(
        key_id=key_id,
        principal=principal,
        key_sha256=key_sha256(key),
        role=cmd.role,
        label=cmd.label,
        scopes=tuple(dict.fromkeys(cmd.limited_to)),
        expires_at=datetime.now(UTC) + timedelta(seconds=cmd.expires_in_s) if cmd.expires_in_s else None,
    )
    warnings = await issued_key_warnings(principal, payload.scopes, ctx)
    return Decision([ctx.event(payload, principal_stream(principal))], key, warnings)


async def revoke_api_key(cmd: RevokeApiKey, ctx: CommandContext) -> Decision:
    key = await ctx.reads.identity.api_key(cmd.key_id)
    if key is None:
        raise NotFound(f"no API key {quoted(cmd.key_id)}")
    if key["revoked_at"] is not None:
        return Decision([], cmd.key_id)
    # Nobody could issue keys again (short of deleting <data-dir>/admin-api-key and restarting the server); nor once
    # the admin keys left had expired.
    lasting = key["role"] == "admin" and key.get("expires_at") is None
    if lasting and await ctx.reads.identity.lasting_admin_keys() <= 1:
        raise Conflict(
            f"{cmd.key_id} is the last live admin key that never expires: issue another admin key (no expiresInS) "
            "before revoking it"
        )
    principal = Actor(kind=key["principal_kind"], id=key["principal_id"])
    return Decision(
        [ctx.event(ApiKeyRevoked(key_id=cmd.key_id, principal=principal), principal_stream(principal))],
        cmd.key_id,
        await revoked_key_warnings(principal, cmd.key_id, ctx),
    )


async def grant_role(cmd: GrantRole, ctx: CommandContext) -> Decision:
    principal = Actor(kind=cmd.principal_kind, id=cmd.principal_id)
    payload = RoleGranted(principal=principal, scope=cmd.scope, role=cmd.role)
    warnings = await granted_role_warnings(principal, cmd.scope, ctx)
    return Decision([ctx.event(payload, principal_stream(principal))], cmd.role, warnings)


async def revoke_role(cmd: RevokeRole, ctx: CommandContext) -> Decision:
    principal = Actor(kind=cmd.principal_kind, id=cmd.principal_id)
    held = (await ctx.reads.identity.roles_by_scope(cmd.principal_kind, cmd.principal_id)).get(cmd.scope)
    if held is None:
        raise NotFound(f"{principal} holds no role on {cmd.scope}")
    revoked = RoleRevoked(principal=principal, scope=cmd.scope, role=held)
    return Decision([ctx.event(revoked, principal_stream(principal))], None)


async def set_visibility(cmd: SetVisibility, ctx: CommandContext) -> Decision:
    if (cmd.scope in await ctx.reads.identity.private_scopes()) == cmd.private:
        return Decision([], cmd.private)  # already so
    payload = ScopeMadePrivate(scope=cmd.scope) if cmd.private else ScopeMadePublic(scope=cmd.scope)
    return Decision([ctx.event(payload, visibility_stream(cmd.scope))], cmd.private)


async def protect_alias(cmd: ProtectAlias, ctx: CommandContext) -> Decision:
    if await ctx.reads.registry.registered_model(cmd.registered_model) is None:
        raise NotFound(f"registered model {quoted(cmd.registered_model)} does not exist: link a version to it first")
    if cmd.alias in await ctx.reads.registry.protected_aliases(cmd.registered_model):
        return Decision([], cmd.alias)
    return Decision(
        [ctx.event(AliasProtected(**cmd.model_dump()), registered_model_stream(cmd.registered_model))], cmd.alias
    )


async def unprotect_alias(cmd: UnprotectAlias, ctx: CommandContext) -> Decision:
    if cmd.alias not in await ctx.reads.registry.protected_aliases(cmd.registered_model):
        raise NotFound(f"alias {quoted(cmd.alias)} of {quoted(cmd.registered_model)} is not protected")
    return Decision(
        [ctx.event(AliasUnprotected(**cmd.model_dump()), registered_model_stream(cmd.registered_model))], cmd.alias
    )


async def _tagged_version(cmd: TagArtifactVersion, ctx: CommandContext) -> dict[str, Any]:
    found = await ctx.reads.registry.artifact_version_by_ref(cmd.entity, cmd.project, cmd.name, cmd.version)
    if found is None:
        raise NotFound(f"no artifact version {cmd.entity}/{cmd.project}/{cmd.name}:{cmd.version}")
    return found


async def tag_artifact_version(cmd: TagArtifactVersion, ctx: CommandContext) -> Decision:
    version = await _tagged_version(cmd, ctx)
    if cmd.tag in version["tags"]:
        return Decision([], version["id"])
    payload = ArtifactVersionTagged(
        artifact_version_id=version["id"], entity=cmd.entity, project=cmd.project, name=cmd.name, tag=cmd.tag
    )
    return Decision([ctx.event(payload, artifact_stream(cmd.entity, cmd.project, cmd.name))], version["id"])


async def untag_artifact_version(cmd: UntagArtifactVersion, ctx: CommandContext) -> Decision:
    version = await _tagged_version(cmd, ctx)
    if cmd.tag not in version["tags"]:
        raise NotFound(f"{cmd.entity}/{cmd.project}/{cmd.name}:{cmd.version} has no tag {quoted(cmd.tag)}")
    payload = ArtifactVersionUntagged(
        artifact_version_id=version["id"], entity=cmd.entity, project=cmd.project, name=cmd.name, tag=cmd.tag
    )
    return Decision([ctx.event(payload, artifact_stream(cmd.entity, cmd.project, cmd.name))], version["id"])


async def _existing_run(cmd: Any, ctx: CommandContext) -> dict[str, Any]:
    run = await ctx.reads.registry.run(cmd.entity, cmd.project, cmd.run_id)
    if run is None:
        raise NotFound(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} does not exist: start it first")
    return run


async def update_run_config(cmd: UpdateRunConfig, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    run = await _existing_run(cmd, ctx)
    changes = {k: v for k, v in cmd.changes.items() if run["config"].get(k, _ABSENT) != v}
    removed = tuple(k for k in dict.fromkeys(cmd.removed) if k in run["config"])
    if not changes and not removed:
        return Decision([], cmd.run_id)
    run_id = {"entity": cmd.entity, "project": cmd.project, "run_id": cmd.run_id}
    payload = RunConfigUpdated(**run_id, changes=changes, removed=removed)
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def update_run_summary(cmd: UpdateRunSummary, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    await _existing_run(cmd, ctx)
    payload = RunSummaryUpdated(**{**cmd.facts(), "removed": tuple(dict.fromkeys(cmd.removed))})
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def describe_run(cmd: DescribeRun, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    await _existing_run(cmd, ctx)
    if cmd.name is None and cmd.notes is None and cmd.tags is None and cmd.group is None:
        raise InvalidInput("describe a run with at least one of name, notes, tags or group")
    payload = RunDescribed(**cmd.facts())
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def resume_run(cmd: ResumeRun, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    run = await _existing_run(cmd, ctx)
    if run["state"] == "running":
        return Decision([], cmd.run_id)
    payload = RunResumed(**cmd.facts())
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


HEARTBEAT_AT_MOST_EVERY = timedelta(minutes=1)


async def record_run_heartbeat(cmd: RecordRunHeartbeat, ctx: CommandContext) -> Decision:
    run = await _existing_run(cmd, ctx)
    if run["state"] not in ("running", "crashed"):
        raise Conflict(f"run {cmd.entity}/{cmd.project}/{cmd.run_id} is {run['state']}: resume it to log to it again")
    beaten = run.get("last_heartbeat_at")
    if run["state"] == "running" and beaten is not None and datetime.now(UTC) - beaten < HEARTBEAT_AT_MOST_EVERY:
        return Decision([], cmd.run_id)  # a beat a minute is all the log keeps, however many are sent
    beat = ctx.event(RunHeartbeat(**cmd.model_dump()), run_stream(cmd.entity, cmd.project, cmd.run_id))
    return Decision(_alive_again(run, cmd, ctx) or [beat], cmd.run_id)


async def raise_alert(cmd: RaiseAlert, ctx: CommandContext) -> Decision:
    if await already_accepted(cmd, ctx):
        return Decision([], cmd.run_id)
    await _existing_run(cmd, ctx)
    payload = RunAlerted(**cmd.facts())
    return Decision([ctx.event(payload, run_stream(cmd.entity, cmd.project, cmd.run_id))], cmd.run_id)


async def _named_version(cmd: EditArtifactVersion | DeleteArtifactVersion, ctx: CommandContext) -> dict[str, Any]:
    found = await ctx.reads.registry.artifact_version_by_ref(cmd.entity, cmd.project, cmd.name, cmd.version)
    if found is None:
        raise NotFound(f"no artifact version {cmd.entity}/{cmd.project}/{cmd.name}:{cmd.version}")
    if not cmd.in_the_turn_taken(found["id"]):
        # `latest` or an alias moved while the command waited: acting on the new holder outside its turn deleted a
        # version a link was being decided on beside it, and the deleted version stayed linked.
        raise Conflict(
            f"{cmd.entity}/{cmd.project}/{cmd.name}:{cmd.version} moved to another version while this command "
            f"waited (now v{found['version_index']}): name the version by its number (vN) and send it again"
        )
    return found


async def edit_artifact_version(cmd: EditArtifactVersion, ctx: CommandContext) -> Decision:
    version = await _named_version(cmd, ctx)
    held = set(version["aliases"])
    clash = set(cmd.aliases_added) & set(cmd.aliases_removed)
    if clash:
        raise InvalidInput(f"alias {quoted(sorted(clash)[0])} is both added and removed: say one")
    added = tuple(a for a in dict.fromkeys(cmd.aliases_added) if a not in held)
    removed = tuple(a for a in dict.fromkeys(cmd.aliases_removed) if a in held)
    description = cmd.description if cmd.description != version["description"] else None
    metadata = cmd.metadata if cmd.metadata is not None and cmd.metadata != version["metadata"] else None
    if not added and not removed and description is None and metadata is None:
        return Decision([], version["id"])  # saved with nothing changed
    return _version_edited(
        cmd,
        version["id"],
        ctx,
        description=description,
        metadata=metadata,
        aliases_added=added,
        aliases_removed=removed,
    )


def _how_to_unlink(shown: list[str], version_id: Any) -> str:
    """The calls that unlink a version, for the first link the caller may read (`model:vN`)."""
    if not shown:
        return "someone who may edit those registered models must unlink it"
    model, _, number = shown[0].rpartition(":")
    return (
        f'in Python: modelreg.Api().artifact("model-registry/{model}:{number}").unlink(); in GraphQL: '
        f'unlinkArtifactVersion(input: {{registeredModel: "{model}", artifactVersionId: "{version_id}"}}); '
        "or the Unlink button of the model version's page in the web UI"
    )


async def delete_artifact_version(cmd: DeleteArtifactVersion, ctx: CommandContext) -> Decision:
    version = await _named_version(cmd, ctx)
    ref = f"{cmd.entity}/{cmd.project}/{cmd.name}:v{version['version_index']}"
    if version["aliases"] and not cmd.delete_aliases:
        raise Conflict(
            f"{ref} holds the aliases {', '.join(version['aliases'])}: delete it with delete_aliases=True "
            "(or remove them first)"
        )
    links = await ctx.reads.registry.links_of(version["id"])
    if links:
        readable = ctx.caller.readable()
        shown = [f"{link['registered_model']}:v{link['version_index']}" for link in links]
        shown = [name for name, link in zip(shown, links, strict=True) if readable.model(link["registered_model"])]
        unread = len(links) - len(shown)  # a private model's name is not told to who may not read it
        models = ", ".join([*shown, *([f"{unread} registered model(s) you may not read"] if unread else [])])
        how = _how_to_unlink(shown, version["id"])
        raise Conflict(f"{ref} is linked to {models}: unlink it from the registry before deleting it ({how})")
    payload = ArtifactVersionDeleted(
        artifact_version_id=version["id"],
        entity=cmd.entity,
        project=cmd.project,
        name=cmd.name,
        aliases_removed=tuple(version["aliases"]),
    )
    return Decision([ctx.event(payload, artifact_stream(cmd.entity, cmd.project, cmd.name))], version["id"])


_ABSENT = object()

HANDLERS: dict[type[Command], Handler] = {
    StartRun: start_run,
    FinishRun: finish_run,
    LogMetrics: log_metrics,
    LogMetricBatch: log_metric_batch,
    LogArtifactVersion: log_artifact_version,
    UseArtifactVersion: use_artifact_version,
    LinkVersion: link_version,
    AddAlias: add_alias,
    RemoveAlias: remove_alias,
    IssueApiKey: issue_api_key,
    RevokeApiKey: revoke_api_key,
    UnlinkVersion: unlink_version,
    UpdateModelCard: update_model_card,
    TagModel: tag_model,
    UntagModel: untag_model,
    GrantRole: grant_role,
    RevokeRole: revoke_role,
    SetVisibility: set_visibility,
    ProtectAlias: protect_alias,
    UnprotectAlias: unprotect_alias,
    TagArtifactVersion: tag_artifact_version,
    UntagArtifactVersion: untag_artifact_version,
    **LAUNCH_HANDLERS,
    **PARKED_STREAM_HANDLERS,
    RecordSync: record_sync,
    UpdateRunConfig: update_run_config,
    UpdateRunSummary: update_run_summary,
    DescribeRun: describe_run,
    RaiseAlert: raise_alert,
    ResumeRun: resume_run,
    RecordRunHeartbeat: record_run_heartbeat,
    EditArtifactVersion: edit_artifact_version,
    DeleteArtifactVersion: delete_artifact_version,
}

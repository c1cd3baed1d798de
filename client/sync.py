"""Uploading offline runs (`modelreg sync`): each recorded command, in order, with its id and its time (a claim the
server keeps beside its own time of receipt, for the run's own commands; a link goes at the server's time).

Idempotent twice over: the spool's sync state remembers how far a sync got, so a second one resumes
there; and should that state be lost (a sync cut between the server's answer and the state's write),
the server recognises each command by its id and changes nothing for one it already has.

Artifact versions keep the ids the offline run chose, so commands after them (use, link) name them as
recorded. One exception: a version whose content equals its collection's newest version is not logged
again (the registry hands back the existing one); its id then maps to that version's for what follows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from modelreg.api import default_entity
from modelreg.errors import ModelregError, NotFound
from modelreg.offline_run import ENTITY_OF_KEY
from modelreg.run import finish_input
from modelreg.run_changes import RUN_CHANGES
from modelreg.spool import Recorded, Spool
from modelreg.transport import Transport

_START = "mutation($i: StartRunInput!) { startRun(input: $i) { runId } }"
_FINISH = "mutation($i: FinishRunInput!) { finishRun(input: $i) { state } }"
_METRICS = "mutation($i: LogMetricsInput!) { logMetrics(input: $i) }"
_METRIC_BATCH = "mutation($i: LogMetricBatchInput!) { logMetricBatch(input: $i) }"
_LOG = "mutation($i: LogArtifactVersionInput!) { logArtifactVersion(input: $i) { id } }"
_USE = "mutation($i: UseArtifactVersionInput!) { useArtifactVersion(input: $i) { id } }"
# A link is the registry's history, not the run's: the server refuses a claimed time on it (its own counts).
_LINK = "mutation($i: LinkArtifactVersionInput!) { linkArtifactVersion(input: $i) { version } }"
_SYNCED = "mutation($i: RecordSyncInput!) { recordOfflineSync(input: $i) { syncedAt } }"


@dataclass(frozen=True)
class SyncReport:
    run_path: str
    commands: int  # recorded in the journal
    sent: int  # sent by this sync (the others were sent by an earlier one), skipped ones included
    finished: bool  # the journal ends with the run's finish, and the server was told it is synced
    skipped: tuple[str, ...] = ()  # the commands this sync or an earlier one left out, refused: "line 7 (kind): why"


class SyncRefused(ModelregError):
    """The server refused one recorded command; those before it are synced, a new sync resumes there."""


def sync_offline_run(
    folder: Path,
    transport: Transport,
    *,
    show_progress: bool = True,
    on_sent: Callable[[int], None] | None = None,
    skip_refused: bool = False,
) -> SyncReport:
    """Upload one offline run folder. `on_sent(n)` is called after the n-th command is on the server.
    `skip_refused`: a command the server refuses for good (not its start) is left out, and the sync goes on; what
    was left out is kept in the sync state and reported. Without it, the sync stops there, to be fixed and resumed:
    a refusal may be the key's (a team it may not write in), and another key sends the command as recorded."""
    spool = Spool(folder)
    entries = spool.entries()
    start = entries[0].input
    project, run_id = start["project"], start["runId"]
    state = spool.sync_state()
    ids: dict[str, str] = state["ids"]
    first = state["done"]
    skipped: list[str] = list(state.get("skipped", ()))
    skipped += [damage for damage in spool.damaged if damage not in skipped]
    # A run started offline with no entity goes where the syncing key's runs go (as it would have online): the
    # first sync's, kept, so that a sync resumed with another key does not split the run.
    entity = state.get("entity") or (default_entity(transport) if start.get(ENTITY_OF_KEY) else start["entity"])
    run_path = f"{entity}/{project}/{run_id}"
    with tqdm(
        total=len(entries), initial=first, unit="cmd", desc=f"syncing {run_path}", disable=not show_progress
    ) as bar:
        for index in range(first, len(entries)):
            entry = entries[index]
            try:
                answer = _send(entry, spool, transport, ids, (entity, project, run_id))
            except ModelregError as exc:
                if exc.retriable:
                    raise
                if not skip_refused or entry.kind == "start_run":
                    # A start cannot be left out: without it nothing after it has a run to go to.
                    way_on = (
                        "the run's start cannot be left out: sync it with a key that may start it there"
                        if entry.kind == "start_run"
                        else "or leave out what the server refuses with `modelreg sync --skip-refused`"
                    )
                    if entry.kind == "start_run" and exc.code == "CONFLICT":
                        way_on = (
                            "an offline run is synced as a new run and cannot join one that exists (init's `resume` "
                            "is ignored offline): record it again under another id, or log online with "
                            "resume='allow'"
                        )
                    raise SyncRefused(
                        f"{spool.journal_path} line {index + 1} ({entry.kind}) was refused: {exc.message}. "
                        f"The {index} commands before it are synced; fix the cause and run `modelreg sync {folder}` "
                        f"again, {way_on}.",
                        code=exc.code,
                    ) from exc
                skipped.append(_left_out(entry, index, exc, spool, transport, ids, (entity, project, run_id)))
                bar.write(f"modelreg: left out {spool.journal_path} {skipped[-1]}")
            else:
                if entry.kind == "log_artifact":
                    ids[entry.input["id"]] = answer
            spool.save_sync_state({"done": index + 1, "ids": ids, "entity": entity, "skipped": skipped})
            bar.update(1)
            if on_sent is not None:
                on_sent(index + 1)
    finished = entries[-1].kind == "finish_run"
    if finished:
        _record_sync(transport, entries, (entity, project, run_id))
    return SyncReport(run_path, len(entries), len(entries) - first, finished, tuple(skipped))


def _left_out(
    entry: Recorded,
    index: int,
    refused: ModelregError,
    spool: Spool,
    transport: Transport,
    ids: dict[str, str],
    run: tuple[str, str, str],
) -> str:
    """What a refused command leaves out. A finish refused for its summary (a value set offline that the server
    cannot store) is sent again without it: the run's end matters more, and a run left running looks alive."""
    if entry.kind == "finish_run" and entry.input.get("summary"):
        try:
            _send(replace(entry, input={**entry.input, "summary": {}}), spool, transport, ids, run)
        except ModelregError as again:
            if again.retriable:
                raise
        else:
            return f"line {index + 1} (finish_run's summary; the finish itself is synced): {refused.message}"
    return f"line {index + 1} ({entry.kind}): {refused.message}"


def _send(entry: Recorded, spool: Spool, transport: Transport, ids: dict[str, str], run: tuple[str, str, str]) -> Any:
    entity, project, run_id = run
    when = {"commandId": str(entry.command_id), "occurredAt": entry.occurred_at.isoformat()}
    fields = entry.input
    if entry.kind == "start_run":
        start = {k: v for k, v in fields.items() if k != ENTITY_OF_KEY}
        return transport.graphql(_START, {"i": {**start, "entity": entity, **when}})
    if entry.kind == "log_metrics" and "series" in fields:
        run_fields = {"entity": entity, "project": project, "runId": run_id}
        return transport.graphql(_METRIC_BATCH, {"i": {**fields, **run_fields, **when}}, compress=True)
    if entry.kind == "log_metrics":  # rows, as spools written before the background sender recorded them
        metrics = {"entity": entity, "project": project, "runId": run_id, "rows": fields["rows"], **when}
        return transport.graphql(_METRICS, {"i": metrics})
    if entry.kind == "log_artifact":
        for file in fields["files"]:
            if file.get("ref") is not None or transport.has_blob(file["digest"]):
                continue  # a reference is not uploaded; a draft's unchanged files are on the server
            kept = spool.blob_path(file["digest"])
            if not kept.is_file():
                raise NotFound(f"{file['path']} ({file['digest']}) is neither in {spool.folder} nor on the server")
            transport.upload(kept, file["digest"], lambda n: None)
        # An artifact of the run's entity (the only one an offline run logs to) follows the run to its entity.
        logged = {**fields, "entity": entity, **when}
        return transport.graphql(_LOG, {"i": logged})["logArtifactVersion"]["id"]
    if entry.kind == "use_artifact":
        version_id = ids.get(fields["artifactVersionId"], fields["artifactVersionId"])
        use = {"artifactVersionId": version_id, "entity": entity, "project": project, "runId": run_id, **when}
        return transport.graphql(_USE, {"i": use})
    if entry.kind == "link_artifact":
        version_id = ids.get(fields["artifactVersionId"], fields["artifactVersionId"])
        link = {
            "registeredModel": fields["registeredModel"],
            "artifactVersionId": version_id,
            "aliases": fields["aliases"],
            "commandId": when["commandId"],
        }
        return transport.graphql(_LINK, {"i": link})
    if entry.kind == "finish_run":
        return transport.graphql(_FINISH, {"i": {**finish_input(fields), "entity": entity, **when}})
    if entry.kind in RUN_CHANGES:
        change = {**fields, "entity": entity, "project": project, "runId": run_id, **when}
        return transport.graphql(RUN_CHANGES[entry.kind], {"i": change})
    raise AssertionError(entry.kind)  # Recorded.from_json admits known kinds only


def _record_sync(transport: Transport, entries: list[Recorded], run: tuple[str, str, str]) -> None:
    """Tell the server the run is synced; the id derives from the run's start, so it is told once."""
    entity, project, run_id = run
    fields = {
        "entity": entity,
        "project": project,
        "runId": run_id,
        "commandId": str(uuid.uuid5(entries[0].command_id, "synced")),
        "commands": len(entries),
        "firstOccurredAt": entries[0].occurred_at.isoformat(),
        "lastOccurredAt": entries[-1].occurred_at.isoformat(),
        "recordedOn": ((entries[0].input.get("environment") or {}).get("host") or {}).get("hostname"),
    }
    transport.graphql(_SYNCED, {"i": fields})

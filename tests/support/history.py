"""Generated event histories that look like a team's registry: runs, artifact versions, links, alias moves."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from uuid_utils.compat import uuid7

from modelreg.events.artifacts import (
    ArtifactVersionLogged,
    ArtifactVersionTagged,
    ArtifactVersionUntagged,
    ArtifactVersionUsed,
    ManifestEntry,
    artifact_stream,
)
from modelreg.events.envelope import Actor, Envelope
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
from modelreg.events.runs import MetricsLogged, RunFinished, RunStarted, run_stream, series_from_rows

ENTITY, PROJECT = "acme", "nature"
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def registry_history(
    n: int, *, seed: int = 7, collections: int = 20, models: int = 3, later_events: bool = False
) -> list[Envelope]:
    """`n` events in a valid order: each run starts before it logs, versions exist before they are linked.
    `later_events`: also the kinds added since the benchmarks' baseline was recorded (W&B's run and artifact
    changes, visibility), in a share of the events the benchmarks' histories leave as they are."""
    rng = random.Random(seed)
    actors = [Actor(kind="user", id=name) for name in ("alice", "bob", "carol")] + [Actor(kind="service", id="ci")]
    events: list[Envelope] = []
    versions: list[str] = []
    collection_of: dict[str, str] = {}
    linked: dict[str, list[str]] = {}
    run_ids: list[str] = []

    def add(payload: object, stream: str) -> None:
        at = _T0 + timedelta(milliseconds=len(events))
        events.append(Envelope.new(payload, stream=stream, actor=rng.choice(actors), occurred_at=at))  # type: ignore[arg-type]

    while len(events) < n:
        roll = rng.random()
        if later_events and roll >= 0.85 and run_ids and versions:
            add_a_later_event(rng, add, run_ids, versions, collection_of)
        elif roll < 0.08 or not run_ids:
            run_id = f"run-{len(run_ids)}"
            run_ids.append(run_id)
            add(
                RunStarted(entity=ENTITY, project=PROJECT, run_id=run_id, config={"lr": rng.random()}),
                run_stream(ENTITY, PROJECT, run_id),
            )
        elif roll < 0.45:
            name = f"collection-{rng.randrange(collections)}"
            version_id = uuid7()
            versions.append(str(version_id))
            collection_of[str(version_id)] = name
            payload = ArtifactVersionLogged(
                artifact_version_id=version_id,
                entity=ENTITY,
                project=PROJECT,
                name=name,
                artifact_type="model",
                digest=_digest(str(version_id)),
                manifest=(ManifestEntry(path="weights.bin", size=rng.randrange(10**9), digest=_digest(name)),),
                metadata={"accuracy": rng.random()},
                logged_by_run=rng.choice(run_ids),
            )
            add(payload, artifact_stream(ENTITY, PROJECT, name))
        elif roll < 0.47 and versions:
            version_id = rng.choice(versions)
            name = collection_of[version_id]
            kind = ArtifactVersionTagged if rng.random() < 0.7 else ArtifactVersionUntagged
            payload = kind(
                artifact_version_id=version_id,
                entity=ENTITY,
                project=PROJECT,
                name=name,
                tag=rng.choice(["golden", "validated"]),
            )
            add(payload, artifact_stream(ENTITY, PROJECT, name))
        elif roll < 0.55 and versions:
            run_id = rng.choice(run_ids)
            payload = ArtifactVersionUsed(
                artifact_version_id=rng.choice(versions), entity=ENTITY, project=PROJECT, run_id=run_id
            )
            add(payload, run_stream(ENTITY, PROJECT, run_id))
        elif roll < 0.65 and versions:
            model = f"model-{rng.randrange(models)}"
            version_id = rng.choice(versions)
            linked.setdefault(model, []).append(version_id)
            add(VersionLinked(registered_model=model, artifact_version_id=version_id), registered_model_stream(model))
        elif roll < 0.8 and linked:
            model = rng.choice(sorted(linked))
            alias = rng.choice(["production", "staging", "candidate"])
            payload = AliasAdded(registered_model=model, artifact_version_id=rng.choice(linked[model]), alias=alias)
            add(payload, registered_model_stream(model))
        elif roll < 0.85 and linked:
            model = rng.choice(sorted(linked))
            payload = AliasRemoved(
                registered_model=model, artifact_version_id=rng.choice(linked[model]), alias="staging"
            )
            add(payload, registered_model_stream(model))
        elif roll < 0.88 and linked:
            model = rng.choice(sorted(linked))
            stream = registered_model_stream(model)
            choice = rng.randrange(6)
            if choice == 4:
                add(AliasProtected(registered_model=model, alias="production"), stream)
            elif choice == 5:
                add(AliasUnprotected(registered_model=model, alias="production"), stream)
            elif choice == 0:
                add(ModelCardChanged(registered_model=model, description=f"# {model}\nrevision {len(events)}"), stream)
            elif choice in (1, 2):
                tag = rng.choice(["vision", "tabular", "prod-ready"])
                add((ModelTagged if choice == 1 else ModelUntagged)(registered_model=model, tag=tag), stream)
            elif len(linked[model]) > 1:
                version_id = linked[model].pop(rng.randrange(len(linked[model])))
                add(VersionUnlinked(registered_model=model, artifact_version_id=version_id), stream)
        elif roll < 0.95:
            run_id = rng.choice(run_ids)
            # Steps at random: a later batch may log a step again, or one before the last (the later value wins).
            rows = [
                {"step": rng.randrange(100), "values": {"loss": rng.random(), "acc": rng.random()}} for _ in range(3)
            ]
            add(
                MetricsLogged(entity=ENTITY, project=PROJECT, run_id=run_id, series=series_from_rows(rows)),
                run_stream(ENTITY, PROJECT, run_id),
            )
        else:
            run_id = rng.choice(run_ids)
            add(
                RunFinished(entity=ENTITY, project=PROJECT, run_id=run_id, state="finished"),
                run_stream(ENTITY, PROJECT, run_id),
            )
    return events[:n]


def add_a_later_event(
    rng: random.Random,
    add: Callable[[object, str], None],
    run_ids: list[str],
    versions: list[str],
    collection_of: dict[str, str],
) -> None:
    # Imported here: bench/quick.py replays these histories against older builds, which lack these events.
    from modelreg.events.artifacts import ArtifactVersionDeleted, ArtifactVersionEdited
    from modelreg.events.identity import ScopeMadePrivate, ScopeMadePublic, visibility_stream
    from modelreg.events.runs import RunAlerted, RunConfigUpdated, RunDescribed, RunResumed, RunSummaryUpdated

    run_id, version_id = rng.choice(run_ids), rng.choice(versions)
    run, name = run_stream(ENTITY, PROJECT, run_id), collection_of[version_id]
    of_run = {"entity": ENTITY, "project": PROJECT, "run_id": run_id}
    of_version = {"artifact_version_id": version_id, "entity": ENTITY, "project": PROJECT, "name": name}
    choice = rng.randrange(9)
    if choice == 0:
        lr, layers = rng.random(), rng.randrange(8)
        if layers:
            add(RunConfigUpdated(**of_run, changes={"lr": lr, "layers": layers}), run)
        else:  # `del run.config["layers"]`
            add(RunConfigUpdated(**of_run, changes={"lr": lr}, removed=("layers",)), run)
    elif choice == 1:
        add(RunSummaryUpdated(**of_run, changes={"best_acc": rng.random()}), run)
    elif choice == 2:
        tags = tuple(rng.sample(["baseline", "sweep", "gpu"], rng.randrange(3)))
        add(RunDescribed(**of_run, name=f"run {rng.randrange(99)}", tags=tags, group=rng.choice([None, "g1"])), run)
    elif choice == 3:
        add(RunResumed(**of_run), run)
    elif choice == 4:
        add(RunAlerted(**of_run, title="loss diverged", level=rng.choice(["INFO", "WARN", "ERROR"])), run)
    elif choice in (5, 6):
        alias = rng.choice(["best", "candidate"])
        added, removed = ((alias,), ()) if choice == 5 else ((), (alias,))
        edit = ArtifactVersionEdited(
            **of_version, metadata={"accuracy": rng.random()}, aliases_added=added, aliases_removed=removed
        )
        add(edit, artifact_stream(ENTITY, PROJECT, name))
    elif choice == 7:
        add(ArtifactVersionDeleted(**of_version), artifact_stream(ENTITY, PROJECT, name))
    else:
        scope = rng.choice([f"entity:{ENTITY}", "model:model-0"])
        add((ScopeMadePrivate if rng.random() < 0.6 else ScopeMadePublic)(scope=scope), visibility_stream(scope))

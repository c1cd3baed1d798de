"""Carries out what the trigger projection recorded: enqueue the job or deliver the webhook of each
pending firing, as the automation, and records it as events. Also requeues the jobs of vanished agents, and
marks crashed the runs whose process went silent (services/automations/crashed_runs.py).

Exactly-once effect: a firing stays pending until the trigger projection sees the AutomationFired event
this runner appends after the effect. A crash in between repeats the effect: an enqueue names the same
job (an id derived from automation and event), which the command path and the Launch projection then
take once; a webhook is delivered again with the same X-Modelreg-Delivery id, for the receiver to dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryError, retry_if_result, stop_after_attempt, wait_exponential

from modelreg.errors import ModelregError, NotYetVisible, PermissionDenied, validation_problems
from modelreg.events.automations import FiringOutcome, watched_scope
from modelreg.events.envelope import Actor
from modelreg.events.identity import Role
from modelreg.events.launch import JobSource, Trigger, job_stream
from modelreg.events.log import EventLogNotAnswering, LogPosition
from modelreg.projections.identity_queries import IdentityQueries
from modelreg.projections.launch_queries import LaunchQueries
from modelreg.projections.progress import ProjectionLagging
from modelreg.projections.readable import scope_of
from modelreg.projections.triggers import was_on_at
from modelreg.services.automations import webhook_targets
from modelreg.services.automations.crashed_runs import CRASHED_AFTER_S, mark_silent_runs_crashed
from modelreg.services.automations.templates import action_templates, render, template_variables
from modelreg.services.automations.webhook_signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_V2_HEADER,
    WITHOUT_A_KEY,
    WebhookSecrets,
    signature,
    signature_v2,
)
from modelreg.services.automations.webhook_targets import LookupShares
from modelreg.services.commands.access import RANK, Caller, service_caller
from modelreg.services.commands.application import Application
from modelreg.services.commands.launch_commands import (
    EnqueueJob,
    RecordAutomationFired,
    RecordWebhookAttempt,
    ReportJobFinished,
    RequeueJob,
)

log = logging.getLogger(__name__)

FIRINGS_CHANNEL = "modelreg_firings"
WOKEN_PASSES_APART_S = 0.05
# A webhook's attempts wait 5, 10, 20 s... up to 10 minutes apart: the 5 attempts of the default span 75 s
# (0, 5, 15, 35, 75), 20 (the most allowed) about 2 hours; a receiver restarting or being deployed misses none.
# They were 0.5 s apart at first, and 7.5 s of a receiver's downtime lost the notification for good.
WEBHOOK_BACKOFF_S = 5.0
WEBHOOK_BACKOFF_MAX_S = 600.0
# How far back an automation looks for itself among the automations whose jobs led to an event.
LOOP_DEPTH = 10
# A job whose agent vanished this many times in a row is failed, not requeued again: one that takes its machine
# down (out of memory) took every agent down in turn, for ever.
MAX_REQUEUES = 3
CAUGHT_UP_WAIT_S = 1.0  # how long a pass waits for the trigger projection to reach the log's end
# How often runs are looked over for crashed ones: a run of an ended Launch attempt is marked within this long of
# its 30 s of silence.
RUNS_SUPERVISED_EVERY_S = 10.0
# How long the runner, stopping, waits to stop listening for firings: past it, its session is dropped unanswered.
LISTENER_DROPPED_WITHIN_S = 3.0
_JOB_IDS = uuid.UUID("6f1c1d4e-5b0a-4c43-9a57-6d0f1f0f7a11")  # namespace of job ids derived from firings


def _first_line(error: Exception) -> str:
    said = validation_problems(error) if isinstance(error, ValidationError) else str(error).strip()
    return said.splitlines()[0][:500] if said else type(error).__name__


# A firing, and how many times it was retried: carried out once, a firing retried before the runner saw it closed is
# pending again under the same automation and event, and must not pass for the one carried out.
FiringKey = tuple[uuid.UUID, uuid.UUID, int]


def _key(firing: dict[str, Any]) -> FiringKey:
    return firing["automation_id"], firing["event_id"], firing.get("retries", 0)


def job_id_of_firing(automation_id: uuid.UUID, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_JOB_IDS, f"{automation_id}:{event_id}")


class AutomationRunner:
    def __init__(
        self,
        app: Application,
        secrets: WebhookSecrets,
        *,
        agent_timeout_s: float = 30.0,
        run_crashed_after_s: float = CRASHED_AFTER_S,
        webhook_backoff_s: float = WEBHOOK_BACKOFF_S,
        max_requeue_tries: int = 5,
        lookups: LookupShares | None = None,
    ) -> None:
        self.app = app
        self.lookups = lookups or LookupShares()  # each creator's share of the webhooks' name lookups
        self.launch = LaunchQueries(app.reads.pool)
        self.secrets = secrets
        self.agent_timeout_s = agent_timeout_s
        self.run_crashed_after_s = run_crashed_after_s
        self.webhook_backoff_s = webhook_backoff_s
        self._in_flight: set[FiringKey] = set()
        # Carried out, but the trigger projection may not show the firing closed yet: not again meanwhile.
        self._done: set[FiringKey] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._marking: asyncio.Task[None] | None = None  # the pass over silent runs under way
        self._wake = asyncio.Event()
        self._log_read_to: list[LogPosition] | None = None  # where the trigger projection must be before firing
        self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        # Per (job, attempt) the supervisor could not move on yet: rounds tried, requeues appended, why.
        self.max_requeue_tries = max_requeue_tries
        self._requeue_tries: dict[tuple[uuid.UUID, int], int] = {}
        self._requeues_appended: dict[tuple[uuid.UUID, int], int] = {}
        self._given_up: set[tuple[uuid.UUID, int]] = set()
        # Jobs whose stream a projection parked: the supervisor leaves them alone until an admin releases it.
        self.stuck: dict[tuple[uuid.UUID, int], str] = {}
        self._said_no_webhook_key = False  # said once a process: its firings wait for a key
        self._log_away = False  # the event log did not answer the last pass (said once, until it answers)
        # When the event log last refused something (time.monotonic()): agents' heartbeats were refused too, so their
        # silence says nothing of them until they have had agent_timeout_s to beat again.
        self._log_refused_at: float | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        conn = await self.app.reads.pool.acquire()
        await conn.add_listener(FIRINGS_CHANNEL, self._woken)
        supervised_at = runs_supervised_at = 0.0
        try:
            while not stopping.is_set():
                # Cleared before the pass, not after: a firing closed while it ran lets the next of its automation in
                # (pending_firings gives a few per automation), and that wake was lost, one pass a second.
                self._wake.clear()
                passed_at = time.monotonic()
                try:
                    await self.fire_pending()
                    if time.monotonic() - supervised_at > min(5.0, self.agent_timeout_s / 3):
                        await self.requeue_orphans()
                        supervised_at = time.monotonic()
                    if time.monotonic() - runs_supervised_at > min(
                        RUNS_SUPERVISED_EVERY_S, self.run_crashed_after_s / 3
                    ):
                        self._supervise_runs()
                        runs_supervised_at = time.monotonic()
                except EventLogNotAnswering as exc:
                    self._log_not_answering(exc)
                    await asyncio.sleep(1.0)
                except (OSError, asyncpg.PostgresError, ModelregError) as exc:  # Postgres or the log away for a moment
                    self._log_refused_at = time.monotonic()  # heartbeats were refused too, maybe
                    log.warning("automation runner: %s; trying again in a second", exc)
                    await asyncio.sleep(1.0)
                else:
                    self._log_answers()
                waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())]
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                # Woken passes come at most WOKEN_PASSES_APART_S apart: each reads every pending firing, and a burst's
                # firings close a commit at a time.
                if not stopping.is_set() and (rest := WOKEN_PASSES_APART_S - (time.monotonic() - passed_at)) > 0:
                    await asyncio.sleep(rest)
        finally:
            # The firings in flight first: stopped because the lock's session hung (services/triggers.py), the goodbyes
            # below wait on PostgreSQL, and meanwhile they went on beside the replica active now.
            self.cut_short()
            if self._tasks:  # each ends at once, unless it lets a connection of a hung session go: not waited for
                await asyncio.wait(list(self._tasks), timeout=LISTENER_DROPPED_WITHIN_S)
            await self._http.aclose()
            gone = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
            with contextlib.suppress(*gone):  # a session that hangs answers no goodbye
                async with asyncio.timeout(LISTENER_DROPPED_WITHIN_S):
                    await conn.remove_listener(FIRINGS_CHANNEL, self._woken)
            with contextlib.suppress(*gone):
                # Given back in time, else dropped (asyncpg terminates it): the pool, shared in `modelreg server` and
                # used again when the runner starts again, opens another when it needs one.
                async with asyncio.timeout(2 * LISTENER_DROPPED_WITHIN_S):
                    await self.app.reads.pool.release(conn, timeout=LISTENER_DROPPED_WITHIN_S)

    def _log_not_answering(self, exc: EventLogNotAnswering) -> None:
        """Said once an outage: every pass fails alike until the event log answers again. Its message is advice to a
        caller (send the command again), nothing an operator of this runner can act on: what happened is said."""
        self._log_refused_at = time.monotonic()
        if self._log_away:
            log.debug("automation runner: %s", exc.what_happened)
            return
        self._log_away = True
        log.warning(
            "automation runner: %s: firings, the requeues of vanished agents' jobs and crashed runs wait until it "
            "answers (they stay pending: nothing is lost); trying again until it does",
            exc.what_happened,
        )

    def _log_answers(self) -> None:
        if self._log_away:
            self._log_away = False
            log.info("automation runner: the event log answers again: carrying out what waited")

    def cut_short(self) -> None:
        """Cancels the firings in flight now (the active replica's lock lost): each stays pending, for whichever
        replica is active next (the same job id, the same webhook delivery id)."""
        for task in list(self._tasks):
            task.cancel()

    def _supervise_runs(self) -> None:
        """A pass over silent runs, as a task of its own: when the registry lags, each mark waits for it, and
        firings, enqueues and requeues must not wait behind them."""
        if self._marking is not None and not self._marking.done():
            return
        self._marking = asyncio.create_task(self._mark_crashed_runs())
        self._tasks.add(self._marking)
        self._marking.add_done_callback(self._tasks.discard)

    async def _mark_crashed_runs(self) -> None:
        try:
            await mark_silent_runs_crashed(self.app, self.run_crashed_after_s)
        except (OSError, asyncpg.PostgresError, ModelregError) as exc:
            log.warning("run supervisor: %s; trying again at the next pass", _for_operators(exc))

    def _woken(self, *_: object) -> None:
        self._wake.set()

    async def fire_pending(self) -> None:
        if not await self._triggers_read_the_log():
            return
        pending = await self.launch.pending_firings(200)
        self._done &= {_key(f) for f in pending}
        for firing in pending:
            key = _key(firing)
            if key in self._in_flight or key in self._done:
                continue
            self._in_flight.add(key)
            task = asyncio.create_task(self._fire_guarded(firing, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _triggers_read_the_log(self) -> bool:
        """Whether the trigger projection has applied the log up to where it ended when this was first asked
        since the last yes. A firing it shows pending may have been carried out long ago, the AutomationFired
        that closed it further on the log: a rebuild of the projection, a registry imported from its export,
        replay them. Carried out again, every past webhook was sent again, and the firings' record rewritten
        with today's settings. A point fixed until reached, not the log's moving end: under a steady load the
        projection is always behind that, and firings would wait for the load to stop."""
        try:
            if self._log_read_to is None:
                self._log_read_to = await self.app.log_end()
            await self.app.progress.wait_for(["triggers"], self._log_read_to, CAUGHT_UP_WAIT_S)
        except ProjectionLagging:
            return False  # replaying, or behind: the next pass
        except EventLogNotAnswering:
            raise  # said once an outage, by the pass
        except Exception as exc:  # noqa: BLE001 -- the broker away for a moment (its client's own errors): the next pass
            log.warning("automation runner: the log's end is not known (%s); trying again at the next pass", exc)
            return False
        self._log_read_to = None
        return True

    async def _fire_guarded(self, firing: dict[str, Any], key: FiringKey) -> None:
        try:
            if await self.fire(firing):
                self._done.add(key)
        except Exception as exc:
            if isinstance(exc, ModelregError) and exc.retriable:
                # Another change held a turn it needed (a killed process's claims last STALE_AFTER, in
                # services/commands/in_flight.py): the firing stays pending and the next pass carries it out again,
                # under the same job or delivery id. A traceback for each firing of a burst told an operator nothing.
                log.warning("automation %s: firing for event %s waits and is retried: %s", *key[:2], exc)
            else:
                log.exception("automation %s: firing for event %s failed; it stays pending and is retried", *key[:2])
            await asyncio.sleep(1.0)
        finally:
            self._in_flight.discard(key)

    async def fire(self, firing: dict[str, Any]) -> bool:
        """Carry out one firing; False when it cannot be done yet (it stays pending for the next round)."""
        automation = await self.launch.automation(firing["automation_id"])
        if automation is None:
            return False
        if automation["action"]["kind"] == "webhook" and not self.secrets.can_sign:
            # A deployment's fault, not the firing's: it waits, pending, for a process started with the key. It was
            # a 35-line traceback every second or two per firing, for ever, with /healthz ok.
            if not self._said_no_webhook_key:
                log.error("automation runner: %s; webhook firings wait, pending, until then", WITHOUT_A_KEY)
                self._said_no_webhook_key = True
            return False
        variables = await self._variables(firing)
        if variables is None:
            return False  # the registry has not shown the event's artifact version yet
        as_automation = Caller(Actor(kind="automation", id=str(automation["automation_id"])), "admin")
        action = automation["action"]
        # The event that fired it, as its facts (kept by the trigger projection) say: its model, else its entity.
        event_scope = scope_of(firing["variables"])
        scope = event_scope or watched_scope(automation["trigger"], action)
        creators_rights = await self._with_creators_rights(automation)
        outcome: FiringOutcome
        job_id: uuid.UUID | None
        if automation.get("deleted_at") is not None:
            job_id, outcome, detail = None, "failed", "not carried out: the automation was deleted before it was"
        elif not automation["enabled"]:
            job_id, outcome, detail = None, "failed", "not carried out: the automation was switched off before it was"
        elif not was_on_at(automation, firing["occurred_at"]):
            # Recorded by a replay that read the event before the switch off that came first (another partition);
            # live, it never fired, and switched on again since, it would act on an event from the time it was off.
            job_id, outcome = None, "failed"
            detail = "not carried out: the automation was switched off when its event happened"
        elif (chain := await self._launched_by_itself(automation["automation_id"], firing)) is not None:
            job_id, outcome = None, "failed"
            detail = (
                f"not carried out: the event was done by job {chain}, which this automation launched (directly or "
                "through others): it would fire again for ever"
            )
        elif missing := sorted(
            {name for template in action_templates(action) for name in template_variables(template)} - variables.keys()
        ):
            # A trigger may provide a variable for some of its events only: `tag_added` gives `artifact_ref` for a
            # version's tag, not a registered model's. Sent as written, "${artifact_ref}" reached the job.
            job_id, outcome = None, "failed"
            detail = (
                f"not carried out: its event gives no {', '.join(missing)} (a {firing['event_type']}), which the "
                "action names: narrow the trigger to the events that do (a collection or entity for versions' "
                "tags, a registered_model for models')"
            )
        elif not creators_rights.readable().scope(event_scope):
            # An automation watching every team fires on private ones too; what it would send (a webhook's
            # payload, a job's config) is made of the event, which its creator may not read.
            job_id, outcome = None, "failed"
            lacking = await self._no_live_key(automation) or f"{automation['created_by']} may not read {event_scope}"
            detail = f"not carried out: the automation acts with its creator's rights, and {lacking}"
        elif action["kind"] == "launch":
            job_id, outcome, detail = None, "failed", None
            try:
                job_id = await self._enqueue(automation, firing, action, variables, creators_rights)
                outcome = "enqueued"
            except PermissionDenied as refused:
                lacking = await self._no_live_key(automation) or str(refused)
                detail = f"not enqueued: the automation acts with its creator's rights, and {lacking}"
            except (ModelregError, ValidationError) as refused:
                # What the event filled in was refused (a project name that is none, a queue since deleted): it
                # will be refused every time, and a firing left pending holds up those behind it.
                if isinstance(refused, ModelregError) and refused.retriable:
                    raise
                detail = f"not enqueued: {_first_line(refused)}"
        else:
            job_id = None
            outcome, detail = await self._deliver(
                automation, firing, action, variables, as_automation, scope, creators_rights, event_scope
            )
        fired = RecordAutomationFired(
            automation_id=automation["automation_id"],
            event_id=firing["event_id"],
            event_type=firing["event_type"],
            outcome=outcome,
            job_id=job_id,
            detail=detail,
            scope=scope,
        )
        await self.app.execute(
            fired, as_automation, firing["event_id"], causation_id=firing["event_id"], wait_for_read_models=False
        )
        return True

    async def _launched_by_itself(self, automation_id: uuid.UUID, firing: dict[str, Any]) -> uuid.UUID | None:
        """The job that did the firing's event, when this automation launched it, or launched a job whose doing
        launched it, and so on (LOOP_DEPTH links at most): a retraining job that moves `production` fired the
        automation on `production` that launched it, for ever. A job's events are correlated by the job."""
        variables = firing["variables"]
        for _ in range(LOOP_DEPTH):
            try:
                job = await self.launch.job(uuid.UUID(variables.get("correlation_id", "")))
            except ValueError:
                return None
            if job is None or not job["triggered_by"]:
                return None
            if uuid.UUID(job["triggered_by"]["automation_id"]) == automation_id:
                return job["job_id"]
            cause = await self.launch.firing(
                uuid.UUID(job["triggered_by"]["automation_id"]), uuid.UUID(job["triggered_by"]["event_id"])
            )
            if cause is None:
                return None
            variables = cause["variables"]
        return None

    async def _with_creators_rights(self, automation: dict[str, Any]) -> Caller:
        """The automation as the actor, with the rights its creator holds now: a job goes only where they
        could send it by hand (its entity may come from the event), a revoked creator launches nothing, and
        nothing is carried out for an event its creator may not read.

        Their keys' limits hold too: a creator whose admin key was replaced by one limited to their team read every
        private team through their automations, and still reached private addresses. The keys without limits give
        the rights when there are any (the strongest of their roles); else the limited keys, within all their
        scopes together."""
        kind, _, ident = automation["created_by"].partition(":")
        identity = IdentityQueries(self.app.reads.pool)
        live = await self._creators_live_keys(automation)
        unlimited = [key for key in live if not key["scopes"]]
        holding = unlimited or live
        role: Role = max((key["role"] for key in holding), key=RANK.__getitem__) if holding else "viewer"
        limits = () if unlimited else tuple(sorted({scope for key in live for scope in key["scopes"]}))
        grants = await identity.roles_by_scope(kind, ident) if live else {}
        private = await identity.private_scopes()
        return Caller(
            Actor(kind="automation", id=str(automation["automation_id"])), role, grants, private=private, limits=limits
        )

    async def _creators_live_keys(self, automation: dict[str, Any]) -> list[dict[str, Any]]:
        kind, _, ident = automation["created_by"].partition(":")
        keys = (await IdentityQueries(self.app.reads.pool).keys_of([(kind, ident)]))[(kind, ident)]
        return [key for key in keys if key["revoked_at"] is None]

    async def _no_live_key(self, automation: dict[str, Any]) -> str | None:
        """What its creator lacks, when a firing their rights refused was refused for want of any live key: their
        grants are kept but hold through a key, and a record saying they "may not read entity:alpha" sent an admin
        to a grant on alpha that was there. Asked on a refusal only."""
        if await self._creators_live_keys(automation):
            return None
        creator = automation["created_by"]
        return (
            f"{creator}, its creator, holds no live key (each was revoked), and their grants hold only through one: "
            f"issue {creator} a key (issueApiKey), or have someone else create the automation again and delete this "
            "one; then retry the firing (retryFiring)"
        )

    async def _attempt_refused(
        self, automation: dict[str, Any], action: dict[str, Any], rights: Caller, event_scope: str | None
    ) -> str | None:
        """Why a webhook attempt may not be sent with its creator's `rights` as they are now: its retries go on for
        up to two hours, its creator's access may shrink meanwhile. Only an installation admin may allow private
        addresses: sent anyway, a demoted or revoked admin's automation went on reaching the server's own network."""
        if action.get("allow_private_network") and not rights.may("admin", ()):
            lacking = await self._no_live_key(automation) or (
                f"{automation['created_by']}, its creator, holds none now (demoted, revoked or limited): an admin "
                "creates the automation again, or its creator changes it to public addresses only"
            )
            return (
                "not sent: the action allows private addresses (allow_private_network), which takes an installation "
                f"admin's key without limits, and {lacking}"
            )
        if not rights.readable().scope(event_scope):
            lacking = (
                await self._no_live_key(automation) or f"{automation['created_by']} may no longer read {event_scope}"
            )
            return f"not sent: the automation acts with its creator's rights, and {lacking}"
        return None

    async def _variables(self, firing: dict[str, Any]) -> dict[str, Any] | None:
        variables = dict(firing["variables"])
        variables["occurred_at"] = firing["occurred_at"].isoformat()
        version_id = variables.get("artifact_version_id")
        if version_id is not None:
            version = await self.app.reads.artifact_version(uuid.UUID(version_id))
            if version is None:
                return None
            ref = f"{version['entity']}/{version['project']}/{version['name']}"
            variables.update(
                entity=version["entity"],
                project=version["project"],
                collection=version["name"],
                artifact_version=f"v{version['version_index']}",
                artifact_ref=f"{ref}:v{version['version_index']}",
            )
        model = variables.get("registered_model")
        if version_id is not None and model is not None:
            # The version's number in the registered model (v3 of nature-classification), not the logged
            # artifact's own (v0 of nature-classifier): numbered at its link and never given out again. Read here,
            # as artifact_version is: the events name the version by id only.
            linked = await self.app.reads.model_version_of(model, uuid.UUID(version_id))
            if linked is not None:
                variables.update(
                    registered_model_version=f"v{linked['version_index']}",
                    registered_model_ref=f"model-registry/{model}:v{linked['version_index']}",
                )
        return variables

    async def _enqueue(
        self,
        automation: dict[str, Any],
        firing: dict[str, Any],
        action: dict[str, Any],
        variables: dict[str, Any],
        caller: Caller,
    ) -> uuid.UUID:
        job_id = job_id_of_firing(automation["automation_id"], firing["event_id"])
        command = EnqueueJob(
            queue=action["queue"],
            entity=render(action["entity"], variables),
            project=render(action["project"], variables),
            source=JobSource.model_validate(action["source"]),
            config=render(action.get("config") or {}, variables),
            priority=action.get("priority", 0),
            time_limit_s=action.get("time_limit_s"),
            job_id=job_id,
            triggered_by=Trigger(
                automation_id=automation["automation_id"], event_id=firing["event_id"], event_type=firing["event_type"]
            ),
        )
        await self.app.execute(command, caller, firing["event_id"], causation_id=firing["event_id"])
        return job_id

    def _previous_secret(self, automation: dict[str, Any]) -> str | None:
        """The secret a rotation replaced, while it still signs beside the new one."""
        until = automation.get("previous_secret_until")
        if until is None or datetime.now(UTC) >= until:
            return None
        return self.secrets.secret(automation["automation_id"], automation["previous_secret_generation"])

    async def _deliver(
        self,
        automation: dict[str, Any],
        firing: dict[str, Any],
        action: dict[str, Any],
        variables: dict[str, Any],
        caller: Caller,
        scope: str | None,
        creators_rights: Caller,
        event_scope: str | None,
    ) -> tuple[FiringOutcome, str | None]:
        delivery = f"{automation['automation_id']}:{firing['event_id']}"
        # A retried firing's attempts are numbered on from its earlier ones; its delivery id stays the same.
        attempt = await self.launch.webhook_attempts(automation["automation_id"], firing["event_id"])
        tries = 0
        refused: str | None = None
        last: str | None = None

        async def once() -> bool:
            """Whether the firing is done with: delivered, or refused for good (`refused` says why)."""
            nonlocal attempt, tries, refused, last, automation, action
            attempt, tries = attempt + 1, tries + 1
            status, error, started = None, None, time.perf_counter()
            try:
                if tries > 1:
                    # The automation as it is now: switched off or deleted, its retries stop (they went on for up to
                    # two hours); changed, they go where it says now, as `retryFiring` does (a fixed url was not used).
                    automation, action, refused = await self._as_it_is_now(automation, action)
                # The rights the firing was checked with for its first attempt, as they are now for the next.
                rights = creators_rights if tries == 1 else await self._with_creators_rights(automation)
                if refused or (refused := await self._attempt_refused(automation, action, rights, event_scope)):
                    error = refused
                else:
                    # Without a payload of its own, a webhook sends what the firing knows (its variables): `{}` told
                    # the receiver nothing of which model, version or actor the call was about.
                    body = orjson.dumps(render(action["payload"], variables) if action.get("payload") else variables)
                    secret = self.secrets.secret(automation["automation_id"], automation["secret_generation"])
                    previous = self._previous_secret(automation)
                    # Signed at each attempt: the receiver checks the time, and a retry may come hours after the first.
                    headers = {
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: signature(secret, body),
                        SIGNATURE_V2_HEADER: signature_v2(secret, delivery, body, int(time.time()), previous),
                        DELIVERY_HEADER: delivery,
                        "User-Agent": "modelreg-webhooks",
                    }
                    response = await webhook_targets.post(
                        self._http,
                        action["url"],
                        body,
                        headers,
                        private_allowed=bool(action.get("allow_private_network")),
                        resolve=self.lookups.for_webhooks_of(automation["created_by"], automation["automation_id"]),
                    )
                    status = response.status_code
            except (httpx.HTTPError, ModelregError) as exc:
                # Its first line, cut short: a refusal repeating a url of 2,000 characters passed what an attempt's
                # error may hold, the attempt could not be recorded, and the firing stayed pending for ever.
                error = _first_line(exc)
            last = f"answered {status}" if status is not None else error
            duration_ms = (time.perf_counter() - started) * 1000
            record = RecordWebhookAttempt(
                automation_id=automation["automation_id"],
                event_id=firing["event_id"],
                attempt=attempt,
                url=action.get("url", ""),
                status_code=status,
                error=error,
                duration_ms=duration_ms,
                scope=scope,
            )
            await self.app.execute(
                record, caller, firing["event_id"], causation_id=firing["event_id"], wait_for_read_models=False
            )
            return refused is not None or (status is not None and 200 <= status < 300)

        try:
            async for retrying in AsyncRetrying(
                stop=stop_after_attempt(int(action.get("max_attempts", 5))),
                wait=wait_exponential(multiplier=self.webhook_backoff_s, max=WEBHOOK_BACKOFF_MAX_S),
                retry=retry_if_result(lambda delivered: not delivered),
            ):
                with retrying:
                    delivered = await once()
                if not retrying.retry_state.outcome.failed:  # type: ignore[union-attr]
                    retrying.retry_state.set_result(delivered)
        except RetryError:
            return "failed", (
                f"gave up after {tries} attempt{'s' if tries != 1 else ''} (the last: {last}): once the receiver "
                "answers, send it again with "
                f"retryFiring (modelreg automation retry {automation['automation_id']} {firing['event_id']})"
            )
        if refused is not None:  # refused at every attempt while it stays so: `retryFiring` once it is not
            return "failed", refused
        return "delivered", None

    async def _as_it_is_now(
        self, automation: dict[str, Any], action: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """The automation and its action as they are now, and why its next attempt is not sent, if it is not."""
        now = await self.launch.automation(automation["automation_id"])
        if now is None or now.get("deleted_at") is not None:
            return automation, action, "not sent: the automation was deleted after the firing's first attempt"
        if not now["enabled"]:
            return now, action, "not sent: the automation was switched off after the firing's first attempt"
        if now["action"].get("kind") != "webhook":
            return now, action, "not sent: the automation's action is no longer a webhook (retryFiring carries it out)"
        return now, now["action"], None

    async def requeue_orphans(self) -> None:
        """Requeue the jobs of vanished agents, without ever appending in a loop: one requeue per job and
        attempt (a requeue not yet visible is not appended again); a job whose stream is parked is left
        alone, saying so; a job whose requeue is refused `max_requeue_tries` times is failed, saying why."""
        if self._log_refused_at is not None and time.monotonic() - self._log_refused_at < self.agent_timeout_s:
            # Every agent's heartbeats were refused with it: after an outage of over agent_timeout_s, every running
            # job looked vanished and was requeued, while its agent ran it still (twice run, then).
            return
        orphans = await self.launch.orphaned_jobs(datetime.now(UTC), timedelta(seconds=self.agent_timeout_s))
        still = {(job["job_id"], job["attempt"]) for job in orphans}
        for memo in (self._requeue_tries, self._requeues_appended, self.stuck):
            for key in [k for k in memo if k not in still]:
                del memo[key]  # moved on: requeued, finished or cancelled
        self._given_up &= still
        for job in orphans:
            await self._requeue_orphan(job)

    async def _requeue_orphan(self, job: dict[str, Any]) -> None:
        key = (job["job_id"], job["attempt"])
        if key in self._given_up:
            return
        parked = await self.app.progress.parked_among([job_stream(job["job_id"])])
        if parked:
            projection, stream, error = parked[0]
            if key not in self.stuck:
                self.stuck[key] = f"projection {projection} parked {stream} ({error}): release it (`modelreg parked`)"
                log.error("job %s: not requeued while %s", job["job_id"], self.stuck[key])
            return
        self.stuck.pop(key, None)
        if self._requeues_appended.get(key, 0):
            return  # appended, not visible yet (the projection lags): appending it again would change nothing
        if job["vanishings"] >= MAX_REQUEUES:
            await self._fail_instead(
                job,
                f"its agent vanished while running it {job['vanishings'] + 1} times in a row (a job that takes its "
                "machine down, say: out of memory): failed instead of requeued; fix it, then enqueue it again",
            )
            return
        reason = (
            f"agent {job['agent_id']} vanished: no heartbeat since {job['last_seen']}, "
            f"requeued after {self.agent_timeout_s:g} s"
        )
        command = RequeueJob(job_id=job["job_id"], attempt=job["attempt"], reason=reason)
        try:
            accepted = await self.app.execute(command, service_caller("modelreg-launch-supervisor"))
            self._requeues_appended[key] = len(accepted.events)
            log.warning("job %s: %s", job["job_id"], reason)
        except NotYetVisible as exc:  # appended: waiting for it to show is the next rounds' business
            self._requeues_appended[key] = 1
            log.warning("job %s: requeued, not visible yet: %s", job["job_id"], exc)
        except EventLogNotAnswering:
            self._log_refused_at = time.monotonic()
            raise  # not a try of this job's: the pass says so once, and waits for the log
        except ModelregError as exc:
            tries = self._requeue_tries[key] = self._requeue_tries.get(key, 0) + 1
            log.warning(
                "job %s: not requeued (try %d of %d): %s",
                job["job_id"],
                tries,
                self.max_requeue_tries,
                _for_operators(exc),
            )
            if tries >= self.max_requeue_tries:
                await self._give_up(job, tries, exc)

    async def _give_up(self, job: dict[str, Any], tries: int, error: ModelregError) -> None:
        reason = (
            f"agent {job['agent_id']} vanished (no heartbeat since {job['last_seen']}) and the supervisor could not "
            f"requeue the job in {tries} tries ({error}): failed instead; enqueue it again to run it"
        )
        await self._fail_instead(job, reason)

    async def _fail_instead(self, job: dict[str, Any], reason: str) -> None:
        self._given_up.add((job["job_id"], job["attempt"]))
        failed = ReportJobFinished(
            job_id=job["job_id"], agent_id=job["agent_id"], attempt=job["attempt"], state="failed", reason=reason
        )
        try:
            await self.app.execute(failed, service_caller("modelreg-launch-supervisor"), wait_for_read_models=False)
            log.error("job %s: %s", job["job_id"], reason)
        except ModelregError as exc:
            log.error("job %s: gave up requeueing it, and could not fail it either: %s", job["job_id"], exc)


def _for_operators(exc: BaseException) -> str:
    """What a failure means for an operator: the event log's answer to a caller advises sending a command again."""
    return exc.what_happened if isinstance(exc, EventLogNotAnswering) else str(exc)

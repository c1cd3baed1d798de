"""The Launch agent: `modelreg agent --queue cpu --max-jobs 2`.

It talks to the API like any client (GraphQL, its own API key): polls its queues, claims a job (the
job's stream makes exactly one claim win), prepares the code, runs it with the config injected so that
`modelreg.init()` sees it as run.config, streams stdout/stderr into the job record, heartbeats, and
reports the outcome. A job whose attempt was voided (its agent seemed gone and it was requeued) is
killed here as soon as a report is refused. An API that does not answer for a while (a rolling restart) kills no
job: its output is held and sent when the API is back, and its start, end and return are sent again for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, wait_exponential

from modelreg.services.agent.image_references import IMAGE_REFERENCE
from modelreg.services.agent.job_environment import job_environment, passed_on
from modelreg.services.agent.job_folders import JobFolder, remove_abandoned
from modelreg.services.agent.job_output import SEND_AGAIN_WAIT_MAX_S, JobOutput
from modelreg.services.agent.job_workspace import WorkspaceError, checkout
from modelreg.services.agent.kubernetes_jobs import NOT_RECORDED, attempt_key_secret, job_manifest
from modelreg.services.parent_death_signal import signal_at_parent_death
from modelreg.transport import refusal_message

log = logging.getLogger(__name__)

# Of each stream of an attempt, what goes into the job record: a job printing without end (a progress bar every
# step) must not fill the registry's log. The rest is read and dropped, and the record says so.
OUTPUT_KEPT_BYTES = 8 * 1024 * 1024
# A job this agent's key was refused (another team's, or a private one it holds no grant in) is tried again after
# this long: an admin may have granted the role meanwhile.
REFUSED_RETRY_S = 60.0
# A job's start and end are sent again for this long while the API does not take them (restarting, its broker or
# database away): then a line says what the registry shows of the job. A job's last output is tried as long.
REPORT_RETRY_S = 300.0
# A stopping agent gives its jobs back for no longer than the supervisor's --agent-timeout (30 s): past that, its
# silence has them requeued all the same.
RETURN_RETRY_S = 30.0

_JOB = "id queue entity project state source config overrides attempt timeLimitS"
_QUEUES = """query($after: String) {
  launchQueues(first: 500, after: $after) { items { name resource resourceConfig } endCursor hasNextPage } }"""
_WAITING = f"""query($q: [String!]!, $after: String, $e: [String!]) {{
  waitingJobs(queues: $q, first: 20, after: $after, entities: $e) {{ items {{ {_JOB} }} endCursor hasNextPage }}
}}"""
# Pages of waiting jobs read per round at most: jobs this agent may not run (another team's, on a shared queue) are
# passed over, so that a few of them at the head of a queue do not hold up the rest.
WAITING_PAGES = 25
_CLAIM = f"mutation($i: ClaimJobInput!) {{ claimJob(input: $i) {{ attempt apiKey job {{ {_JOB} }} }} }}"
_STARTED = "mutation($i: ReportJobStartedInput!) { reportJobStarted(input: $i) { state } }"
_OUTPUT = "mutation($i: CaptureJobOutputInput!) { captureJobOutput(input: $i) }"
_FINISHED = "mutation($i: ReportJobFinishedInput!) { reportJobFinished(input: $i) { state } }"
_STATE = "query($id: ID!) { launchJob(id: $id) { state agentId } }"
_VIEWER = "{ viewer { id } }"
_HEARTBEAT = "mutation($i: AgentHeartbeatInput!) { agentHeartbeat(input: $i) }"
_RETURN = "mutation($i: ReturnJobInput!) { returnJob(input: $i) { state } }"


class Refused(RuntimeError):
    def __init__(self, message: str, code: str, *, retriable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable  # the server's word: the same request may be taken later
        self.status = status  # of an answer that was no GraphQL answer (code "HTTP")


DOCKER_CHECK_EVERY_S = 60.0
START_WAIT_S = 120.0  # as the server's processes wait for Kafka and PostgreSQL
START_RETRY_S = 2.0
STOP_GRACE_S = 10.0  # between asking a cancelled job to stop and killing it, as `docker stop` gives

# Each job starts under its guard, which takes the job's whole process group down with the agent.
JOB_GUARD = (sys.executable, "-m", "modelreg.services.agent.job_guard")


def _die_with_parent() -> None:
    """A job must not outlive a killed agent: its attempt is requeued and would otherwise run twice."""
    signal_at_parent_death(signal.SIGKILL)
    os.setsid()


async def _stopped(process: asyncio.subprocess.Process, grace_s: float | None = None) -> None:
    """Ask the job's whole process group to stop (SIGTERM: a run finishes as killed, a checkpoint is saved), and
    kill what is left after `grace_s`. Killed at once, a cancelled job could save nothing."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.shield(asyncio.wait_for(process.wait(), STOP_GRACE_S if grace_s is None else grace_s))
    except (TimeoutError, asyncio.CancelledError):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def keep_environment_private() -> None:
    """Make this process's /proc files (its environment, where the agent's key is, and its memory) unreadable by
    other processes of its user: a local-process job runs as that user and must not read the agent's key there.
    Root reads them still: run the agent, and so its jobs, as a user of its own."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(4, 0)  # PR_SET_DUMPABLE; execve gives the jobs their own


def worth_sending_again(exc: BaseException) -> bool:
    """Whether a report may be sent again: no answer (the API restarting), a proxy with no API behind it, an answer
    that says so (UNAVAILABLE or CONFLICT, retriable), or one that it was taken (NOT_YET_VISIBLE). Sent again, a
    report must be one the server takes once: under the same commandId, or one a copy of changes nothing."""
    if isinstance(exc, httpx.TransportError):
        return True
    if not isinstance(exc, Refused):
        return False
    if exc.code == "HTTP":
        return exc.status in (502, 503, 504)  # a 500 is a fault the same request meets again
    return exc.code == "NOT_YET_VISIBLE" or (exc.code in ("UNAVAILABLE", "CONFLICT") and exc.retriable)


def _attempt_gone(exc: BaseException) -> bool:
    """The API says the attempt is no longer this agent's to work on (requeued, cancelled, or its key revoked)."""
    return isinstance(exc, Refused) and (exc.code in ("CONFLICT", "NOT_FOUND", "FORBIDDEN") or _key_refused(exc))


def _key_refused(exc: BaseException) -> bool:
    """The API no longer takes this agent's key (unknown, revoked): asking again cannot help."""
    return isinstance(exc, Refused) and exc.code == "HTTP" and str(exc).startswith(("HTTP 401", "HTTP 403"))


def _machine_name() -> str:
    """This process on this machine, in the characters an agent id allows."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def docker_answers() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    done = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
    )
    if done.returncode != 0:
        return f"no Docker engine answers ({(done.stderr or done.stdout).strip()[:300]})"
    return None


@dataclass
class LaunchAgent:
    url: str
    api_key: str
    queues: list[str]
    max_jobs: int = 1
    poll_s: float = 0.2
    # Each heartbeat is an event on the log: every 10 s, about 8,600 a day per agent (every 2 s made 43,000), well
    # within the supervisor's --agent-timeout (30 s). Whether its jobs were cancelled it asks more often.
    heartbeat_s: float = 10.0
    cancel_check_s: float = 2.0
    # The agent's variables its jobs inherit besides the basics (services/agent/job_environment.py).
    job_env_names: tuple[str, ...] = ()
    output_kept_bytes: int = OUTPUT_KEPT_BYTES
    # The entities whose jobs it runs (`--entity`); empty: every entity its key may claim jobs of. Their code runs
    # on this machine, under this agent's user, beside each other.
    entities: frozenset[str] = frozenset()
    refused_retry_s: float = REFUSED_RETRY_S
    report_retry_s: float = REPORT_RETRY_S
    return_retry_s: float = RETURN_RETRY_S
    # The server accepts only ids of the key's principal (`service:ci:<name>`): filled in from `viewer` at start.
    agent_id: str | None = None
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _http: httpx.AsyncClient | None = None
    _queue_kinds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Jobs this agent's key was refused, by when: tried again after REFUSED_RETRY_S (a grant may have come since).
    _not_for_this_key: dict[str, float] = field(default_factory=dict)
    # Why the API stopped taking this agent's key while it ran (a revoked key): the agent then stops.
    _refused_key: str | None = None
    # The end reports of jobs whose process ended, by job id, while they are being sent: a stop meanwhile sends
    # them again rather than give the job back (a finished job was requeued and ran a second time).
    _ends_under_way: dict[str, dict[str, Any]] = field(default_factory=dict)
    _docker_checked: tuple[float, str | None] | None = None  # when Docker was last asked, and why it did not answer
    start_wait_s: float = START_WAIT_S  # how long a starting agent waits for the API
    # Once stopped, how long running jobs may finish before they are stopped and given back (`--drain`).
    drain_s: float = 0.0
    _attempts: dict[str, dict[str, Any]] = field(default_factory=dict)  # a running job's id -> its attempt's ids

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._http is not None
        response = await self._http.post("/graphql", json={"query": query, "variables": variables or {}})
        if response.status_code != 200:
            message = f"HTTP {response.status_code}: {refusal_message(response)[:500]}"
            raise Refused(message, "HTTP", status=response.status_code)
        body = response.json()
        if body.get("errors"):
            error = body["errors"][0]
            extensions = error.get("extensions") or {}
            raise Refused(
                error["message"], extensions.get("code", "INTERNAL"), retriable=extensions.get("retriable") is True
            )
        return body["data"]

    async def _sent_again(self, query: str, variables: dict[str, Any], for_s: float, what: str) -> dict[str, Any]:
        """`gql`, sent again while the API does not take it (`worth_sending_again`) for `for_s`, waiting from 0.5 s
        up to SEND_AGAIN_WAIT_MAX_S between tries: the last failure is raised."""

        def said(retry_state: RetryCallState) -> None:
            if retry_state.attempt_number == 1 and retry_state.outcome is not None:
                why = retry_state.outcome.exception()
                log.warning("agent %s: %s: not taken (%s); sent again for up to %g s", self.agent_id, what, why, for_s)

        retrying = AsyncRetrying(
            retry=retry_if_exception(worth_sending_again),
            wait=wait_exponential(multiplier=0.5, max=SEND_AGAIN_WAIT_MAX_S),
            stop=stop_after_delay(for_s),
            before_sleep=said,
            reraise=True,
        )
        return await retrying(self.gql, query, variables)

    async def run(self, stopping: asyncio.Event, stop_now: asyncio.Event | None = None) -> None:
        """Until `stopping`: then no job is claimed any more, running ones may finish for `drain_s` (until
        `stop_now`), and those still running are stopped and given back to their queue at once: without that, a
        redeploy's jobs waited as running for the supervisor's timeout, then started again from scratch."""
        keep_environment_private()
        await asyncio.to_thread(remove_abandoned)  # what agents killed on this machine left of their jobs
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(base_url=self.url.rstrip("/"), headers=headers, timeout=30.0) as http:
            self._http = http
            await self._introduced(stopping)
            if stopping.is_set():
                return
            unknown = [q for q in self.queues if q not in self._queue_kinds]
            if unknown:
                raise SystemExit(
                    f"no such queue(s): {', '.join(unknown)} (an admin creates one with `modelreg queue create NAME`)"
                )
            log.info(
                "agent %s: polling %s, up to %d jobs at once", self.agent_id, ", ".join(self.queues), self.max_jobs
            )
            beating = asyncio.create_task(self._heartbeats(stopping))
            try:
                while not stopping.is_set():
                    if len(self._running) < self.max_jobs:
                        try:
                            await self._take_jobs()
                        except (Refused, httpx.HTTPError) as exc:  # the API restarting, say: poll again
                            if _key_refused(exc):
                                self._refused_key = str(exc)
                                break
                            log.warning("agent %s: could not take jobs (%s); retrying", self.agent_id, exc)
                            await asyncio.sleep(1.0)
                    try:
                        await asyncio.wait_for(stopping.wait(), self.poll_s)
                    except TimeoutError:
                        pass
                await self._drained(stop_now or asyncio.Event())
            finally:
                ended = {
                    job_id: self._ends_under_way[job_id] for job_id in self._running if job_id in self._ends_under_way
                }
                stopped = {job_id: self._attempts[job_id] for job_id in self._running if job_id not in ended}
                for task in self._running.values():
                    task.cancel()
                await asyncio.gather(*self._running.values(), return_exceptions=True)
                await asyncio.gather(self._given_back(stopped), *(self._end_sent_again(r) for r in ended.values()))
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
        if self._refused_key is not None:
            raise SystemExit(
                f"agent {self.agent_id}: the API at {self.url} no longer takes this agent's key ({self._refused_key}); "
                "its running jobs were stopped. Issue a new key (a member's service key) and start the agent again"
            )

    async def _drained(self, stop_now: asyncio.Event) -> None:
        """Let running jobs finish for up to `drain_s`, heartbeats going on (else they would be requeued)."""
        if not self._running or self.drain_s <= 0:
            return
        log.info(
            "agent %s: stopping: lets %d running job(s) finish for up to %g s (a second signal stops them now)",
            self.agent_id,
            len(self._running),
            self.drain_s,
        )
        deadline = time.monotonic() + self.drain_s
        signalled = asyncio.create_task(stop_now.wait())
        try:
            while self._running and not stop_now.is_set() and (left := deadline - time.monotonic()) > 0:
                await asyncio.wait(
                    {*self._running.values(), signalled}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            signalled.cancel()

    async def _given_back(self, stopped: dict[str, dict[str, Any]]) -> None:
        """Jobs this stopping agent stopped go back to their queue at once, not after the supervisor's timeout."""
        await asyncio.gather(*(self._give_back(job_id, ids) for job_id, ids in stopped.items()))

    async def _give_back(self, job_id: str, ids: dict[str, Any]) -> None:
        reason = (
            f"agent {self.agent_id} was stopped while it ran attempt {ids['attempt']}, which it stopped "
            f"(SIGTERM, then SIGKILL {STOP_GRACE_S:.0f} s later): requeued"
        )
        returned = {"i": {**ids, "reason": reason}}
        try:
            # Sent again safely without a commandId: a copy finds the attempt no longer this agent's, and does nothing.
            await self._sent_again(_RETURN, returned, self.return_retry_s, f"giving job {job_id} back")
            log.info("agent %s: stopping: job %s stopped and given back to its queue", self.agent_id, job_id)
        except (Refused, httpx.HTTPError) as exc:
            log.warning(
                "agent %s: could not give job %s back (%s): it is requeued once this agent has been silent for "
                "the supervisor's --agent-timeout",
                self.agent_id,
                job_id,
                exc,
            )

    async def _introduced(self, stopping: asyncio.Event) -> None:
        """Who this agent is and what its queues are, waiting for an API that does not answer yet (starting beside
        it, restarting) as it waits once running: it died with a traceback. A refused key is said in a line."""
        deadline = time.monotonic() + self.start_wait_s
        while not stopping.is_set():
            try:
                if self.agent_id is None:
                    self.agent_id = f"{(await self.gql(_VIEWER))['viewer']['id']}:{_machine_name()}"
                self._queue_kinds = {q["name"]: q for q in await self._all_queues()}
                return
            except Refused as exc:
                if _key_refused(exc):
                    raise SystemExit(
                        f"agent: the API at {self.url} refused this agent's key ({exc}): check "
                        "MODELREG_API_KEY (a member's service key)"
                    ) from None
                if not str(exc).startswith("HTTP 5"):
                    raise
                why = str(exc)
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"agent: the modelreg API at {self.url} did not answer for {self.start_wait_s:.0f} s ({why}): "
                    "check --url / MODELREG_URL and that the server is up"
                )
            log.warning("agent: waiting for the modelreg API at %s (%s)", self.url, why)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), START_RETRY_S)

    async def _all_queues(self) -> list[dict[str, Any]]:
        queues, after = [], None
        while True:
            page = (await self.gql(_QUEUES, {"after": after}))["launchQueues"]
            queues += page["items"]
            if not page["hasNextPage"]:
                return queues
            after = page["endCursor"]

    async def _finished(self, ids: dict[str, Any], state: str, reason: str | None, code: int | None = None) -> None:
        """Report how the job's process ended: FINISHED or FAILED, with why. Sent again while the API does not take
        it, under one commandId (the server records it once); not taken in `report_retry_s`, a line says so. A
        refusal saying the attempt is void is raised."""
        report = {**ids, "state": state, "exitCode": code, "reason": reason, "commandId": str(uuid.uuid4())}
        self._ends_under_way[ids["id"]] = report
        try:
            await self._sent_again(
                _FINISHED, {"i": report}, self.report_retry_s, f"the report of job {ids['id']}'s end"
            )
        except (Refused, httpx.HTTPError) as exc:
            if isinstance(exc, Refused) and not worth_sending_again(exc):
                raise
            ended = f"ended ({state}{f': {reason}' if reason else ''}), but the API did not take that report"
            self._said_unreported(ids, ended, exc)
        finally:
            self._ends_under_way.pop(ids["id"], None)

    async def _end_sent_again(self, report: dict[str, Any]) -> None:
        """A stopping agent's report of a job that ended while it was being sent: sent again, same commandId."""
        ids = {k: report[k] for k in ("id", "agentId", "attempt")}
        try:
            await self._sent_again(
                _FINISHED, {"i": report}, self.return_retry_s, f"the report of job {ids['id']}'s end"
            )
        except (Refused, httpx.HTTPError) as exc:
            self._said_unreported(ids, f"ended ({report['state']}), but the API did not take that report", exc)

    def _said_unreported(self, ids: dict[str, Any], what: str, exc: BaseException) -> None:
        """Of a job the registry may show running though this agent no longer runs it: what to do about it. Its
        agent heartbeating, the supervisor does not requeue it (it does once the agent stops: it runs again)."""
        log.error(
            "agent %s: job %s attempt %d %s (%s): the registry may show it RUNNING while no agent runs it; cancel it "
            "(`modelreg job cancel %s`), or it is requeued and run again once this agent stops",
            self.agent_id,
            ids["id"],
            ids["attempt"],
            what,
            exc,
            ids["id"],
        )

    async def _heartbeats(self, stopping: asyncio.Event) -> None:
        """Beats every `heartbeat_s` and looks for cancelled jobs between beats. A failed beat is tried again after
        a wait doubling up to `heartbeat_s` (it was tried again at once: a thousand requests and warnings a second
        against an API restarting), said once when it starts failing and once a minute after; a key the API no
        longer takes (revoked) stops the agent, which can do nothing more with it."""
        loop = asyncio.get_running_loop()
        beat_at = loop.time()
        failures, said_at = 0, -math.inf
        while True:
            try:
                if loop.time() >= beat_at:
                    beat = {"agentId": self.agent_id, "queues": self.queues, "runningJobs": list(self._running)}
                    await self.gql(_HEARTBEAT, {"i": beat})
                    beat_at = loop.time() + self.heartbeat_s
                    if failures:
                        log.info("agent %s: heartbeat answered again after %d failure(s)", self.agent_id, failures)
                    failures, said_at = 0, -math.inf
                await self._stop_cancelled_jobs()
            except (Refused, httpx.HTTPError) as exc:
                if _key_refused(exc):
                    self._refused_key = str(exc)
                    stopping.set()
                    return
                failures += 1
                # The exponent bounded: 2**1024 is past a float, which killed the heartbeats after a long outage.
                beat_at = loop.time() + min(self.heartbeat_s, 0.5 * 2 ** min(failures, 16))
                if loop.time() - said_at >= 60.0:
                    said_at = loop.time()
                    log.warning(
                        "agent %s: heartbeat failed (%s); trying again with waits up to %g s (%d failure(s) so far)",
                        self.agent_id,
                        exc,
                        self.heartbeat_s,
                        failures,
                    )
            await asyncio.sleep(max(0.0, min(self.cancel_check_s, beat_at - loop.time())))

    async def _stop_cancelled_jobs(self) -> None:
        """A job cancelled (or requeued away from this agent) while it runs is killed here."""
        for job_id, task in list(self._running.items()):
            job = (await self.gql(_STATE, {"id": job_id}))["launchJob"]
            if job is None or job["state"] == "CANCELLED" or job["agentId"] != self.agent_id:
                log.info("agent %s: job %s is %s: stopping it", self.agent_id, job_id, job and job["state"])
                task.cancel()

    async def _waiting(self) -> AsyncIterator[dict[str, Any]]:
        after = None
        for _ in range(WAITING_PAGES):
            entities = sorted(self.entities) if self.entities else None  # another team's jobs never come up
            page = (await self.gql(_WAITING, {"q": self.queues, "after": after, "e": entities}))["waitingJobs"]
            for job in page["items"]:
                yield job
            if not page["hasNextPage"]:
                return
            after = page["endCursor"]

    async def _take_jobs(self) -> None:
        async for job in self._waiting():
            if len(self._running) >= self.max_jobs:
                return
            refused_at = self._not_for_this_key.get(job["id"])
            if refused_at is not None and time.monotonic() - refused_at < self.refused_retry_s:
                continue
            if self.entities and job["entity"] not in self.entities:
                continue
            queue = self._queue_kinds.get(job.get("queue", ""))
            if queue is not None and queue["resource"] == "DOCKER" and not self._docker_runs_here():
                continue  # left for an agent where Docker runs: claimed here, it failed (and every one after it)
            try:
                claimed = (await self.gql(_CLAIM, {"i": {"id": job["id"], "agentId": self.agent_id}}))["claimJob"]
            except Refused as exc:
                if exc.code in ("CONFLICT", "NOT_FOUND"):
                    continue  # another agent was first
                if exc.code == "FORBIDDEN":  # its entity's: left to an agent whose key may run it
                    log.warning("agent %s: job %s is not for this key (%s)", self.agent_id, job["id"], exc)
                    self._forget_old_refusals()
                    self._not_for_this_key[job["id"]] = time.monotonic()
                    continue
                raise
            job = claimed["job"]
            self._running[job["id"]] = asyncio.create_task(self._run_job(job, claimed["attempt"], claimed["apiKey"]))
            self._attempts[job["id"]] = {"id": job["id"], "agentId": self.agent_id, "attempt": claimed["attempt"]}

            def forget(task: asyncio.Task[None], key: str = job["id"]) -> None:
                self._running.pop(key, None)
                ids = self._attempts.pop(key, None)
                if not task.cancelled() and (exc := task.exception()) is not None and ids is not None:
                    log.error("agent %s: job %s: its task failed", self.agent_id, key, exc_info=exc)
                    self._said_unreported(ids, "was left unreported: its task failed", exc)

            self._running[job["id"]].add_done_callback(forget)

    def _docker_runs_here(self) -> bool:
        """Whether a Docker engine answers, asked at most once a minute; said once when it does not."""
        now = time.monotonic()
        if self._docker_checked is None or now - self._docker_checked[0] > DOCKER_CHECK_EVERY_S:
            why = docker_answers()
            if why is not None and (self._docker_checked is None or self._docker_checked[1] is None):
                log.warning("agent %s: leaves docker queues' jobs to other agents: %s", self.agent_id, why)
            self._docker_checked = (now, why)
        return self._docker_checked[1] is None

    def _forget_old_refusals(self) -> None:
        now = time.monotonic()
        for job_id in [j for j, at in self._not_for_this_key.items() if now - at >= self.refused_retry_s]:
            del self._not_for_this_key[job_id]

    async def _run_job(self, job: dict[str, Any], attempt: int, api_key: str) -> None:
        """`api_key` is the attempt's own (limited to the job's entity, revoked when the attempt ends): the job's
        code gets it, never the agent's key."""
        ids = {"id": job["id"], "agentId": self.agent_id, "attempt": attempt}
        queue = self._queue_kinds[job["queue"]]
        try:
            if queue["resource"] == "KUBERNETES":
                attempt_job, config = {**job, "job_id": job["id"], "attempt": attempt}, queue["resourceConfig"] or {}
                # What it would submit, in order; the job's readers read the detail, so the key is not in it.
                manifests = [
                    attempt_key_secret(attempt_job, config, NOT_RECORDED),
                    job_manifest(attempt_job, config, server_url=self.url),
                ]
                detail = yaml.safe_dump_all(manifests, sort_keys=False)
                await self._started({**ids, "detail": detail})
                reason = (
                    "this agent does not submit to Kubernetes: the manifests it would submit are in the job's detail "
                    "(apply them with kubectl), or run the job from a docker or local-process queue"
                )
                await self._finished(ids, "FAILED", reason)
                return
            in_docker = queue["resource"] == "DOCKER"
            if in_docker and (why := docker_answers()) is not None:
                await self._finished(ids, "FAILED", f"docker queue, but {why}: run this agent where Docker runs")
                return
            await self._run_process(job, ids, api_key, docker=(queue["resourceConfig"] or {}) if in_docker else None)
        except Refused as exc:
            log.warning("agent %s: job %s attempt %d: %s", self.agent_id, job["id"], attempt, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the job failed, not the agent: say why in the job record
            log.exception("agent %s: job %s failed to run", self.agent_id, job["id"])
            try:
                await self._finished(ids, "FAILED", f"the agent could not run it: {exc}")
            except Refused as refused:
                log.warning("agent %s: job %s attempt %d: %s", self.agent_id, job["id"], attempt, refused)

    async def _started(self, report: dict[str, Any]) -> None:
        """Sent again while the API does not take it: a copy records the same start of the same attempt again."""
        await self._sent_again(
            _STARTED, {"i": report}, self.report_retry_s, f"the report of job {report['id']}'s start"
        )

    async def _output_sent(self, ids: dict[str, Any], stream: str, text: str, piece: uuid.UUID) -> None:
        """A piece of a job's output, under the piece's id. Refused but as the API's answer that the attempt is no
        longer this agent's (which stops the job) or to send it again, it is left out, saying so: the job runs on."""
        try:
            await self.gql(_OUTPUT, {"i": {**ids, "stream": stream, "text": text, "commandId": str(piece)}})
        except Refused as exc:
            if worth_sending_again(exc) or _attempt_gone(exc):
                raise
            log.warning(
                "agent %s: job %s: %d characters of its %s were refused (%s): left out",
                self.agent_id,
                ids["id"],
                len(text),
                stream.lower(),
                exc,
            )

    async def _run_process(
        self, job: dict[str, Any], ids: dict[str, Any], api_key: str, docker: dict[str, Any] | None = None
    ) -> None:
        source = job["source"]
        if source["kind"] != "git" and docker is None:
            raise RuntimeError("image jobs need a docker or kubernetes queue")
        job_folder = JobFolder()
        try:  # whatever fails from here on, the folder goes (its lock held, no sweep would take it)
            try:
                folder = await checkout(source, parent=job_folder.path) if source["kind"] == "git" else job_folder.path
            except WorkspaceError as exc:
                await self._finished(ids, "FAILED", f"could not prepare the code: {exc}")
                return
            handed = job_folder.handed
            job_env = {
                "MODELREG_URL": self.url,
                "MODELREG_API_KEY": api_key,
                **job_environment(job, ids["attempt"], files=handed),
                "PYTHONUNBUFFERED": "1",
            }
            env = {**passed_on(os.environ, self.job_env_names), **job_env}
            argv = list(source["entry_point"])
            if docker is not None:
                argv = docker_argv(source, docker, folder, job_env, handed)
            elif argv and argv[0] in ("python", "python3"):
                argv[0] = sys.executable  # the agent's interpreter has modelreg installed
            process = await asyncio.create_subprocess_exec(
                *JOB_GUARD,
                *argv,
                cwd=folder,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
            capturing: asyncio.Future[Any] | None = None
            timed_out = False
            try:
                await self._started({**ids, "pid": process.pid})
                output = JobOutput(
                    functools.partial(self._output_sent, ids),
                    self.output_kept_bytes,
                    sent_again_after=worth_sending_again,
                    after_the_end_s=self.report_retry_s,
                    name=f"agent {self.agent_id}: job {ids['id']} attempt {ids['attempt']}",
                )
                capturing = asyncio.ensure_future(output.capture({"STDOUT": process.stdout, "STDERR": process.stderr}))
                try:
                    # Shielded: at the limit the job is stopped, and what it prints while it stops is still kept.
                    await asyncio.wait_for(asyncio.shield(capturing), job.get("timeLimitS"))
                except TimeoutError:
                    timed_out = True
                    log.info("agent %s: job %s ran past its time limit: stopping it", self.agent_id, job["id"])
                    await _stopped(process)
                    await capturing
                code = await process.wait()
            except BaseException:
                if capturing is not None:
                    capturing.cancel()
                if process.returncode is None:
                    await _stopped(process)
                raise
            if timed_out:
                reason = (
                    f"ran past its time limit of {_duration(job['timeLimitS'])}: stopped (SIGTERM, then SIGKILL "
                    f"{STOP_GRACE_S:.0f} s later)"
                )
                await self._finished(ids, "FAILED", reason, code)
                return
            state = "FINISHED" if code == 0 else "FAILED"
            await self._finished(ids, state, None if code == 0 else f"exited with status {code}", code)
        finally:
            job_folder.remove()


def _duration(seconds: int) -> str:
    """A time limit as it was likely set: 90 s, 30 min, 6 h."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def docker_argv(
    source: dict[str, Any], queue_config: dict[str, Any], folder: Path, env: dict[str, str], handed: Path | None = None
) -> list[str]:
    """`docker run` of the job: its own image, or the queue's with the checked-out code mounted at /code.
    The image must have modelreg installed (`pip install modelreg`) for the job's runs to report. `env`'s values
    are in docker's own environment: named here only, they stay off the command line that `ps` shows. `handed`
    (files the job is given: a config too large for a variable) is mounted read-only where the host has it."""
    image = source.get("image") or queue_config.get("image") or "python:3.11-slim"
    if not IMAGE_REFERENCE.fullmatch(image):
        # Anything before the image is an option of `docker run` (`--privileged`, `-v /:/host`).
        raise WorkspaceError(f"{image!r} is not an image reference (registry/name:tag or @sha256:...)")
    argv = ["docker", "run", "--rm", "--network", "host"]
    for name in env:
        argv += ["-e", name]
    if queue_config.get("gpus"):
        argv += ["--gpus", str(queue_config["gpus"])]
    if source["kind"] == "git":
        argv += ["-v", f"{folder}:/code", "-w", "/code"]
    if handed is not None and any(name.endswith("_FILE") for name in env):
        argv += ["-v", f"{handed}:{handed}:ro"]
    return [*argv, image, *source["entry_point"]]


def agent_from_environment(
    queues: list[str],
    max_jobs: int,
    url: str | None,
    api_key: str | None,
    job_env_names: tuple[str, ...] = (),
    entities: tuple[str, ...] = (),
) -> LaunchAgent:
    url = url or os.environ.get("MODELREG_URL") or "http://127.0.0.1:8080"
    api_key = api_key or os.environ.get("MODELREG_API_KEY")
    if not api_key:
        raise SystemExit("the agent needs an API key: set MODELREG_API_KEY (a service key with the member role)")
    return LaunchAgent(
        url=url,
        api_key=api_key,
        queues=queues,
        max_jobs=max_jobs,
        job_env_names=job_env_names,
        entities=frozenset(entities),
    )

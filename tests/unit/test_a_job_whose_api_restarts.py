"""A job runs on while the API its agent talks to restarts (a rolling restart): what it printed meanwhile arrives
whole once the API answers again, and its end is reported. A failed send of its output killed it, the report of
its failure failed the same way, and it showed RUNNING for as long as its agent lived."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelreg.services.agent.agent import LaunchAgent

_QUEUES = {"items": [{"name": "cpu", "resource": "LOCAL_PROCESS"}], "endCursor": None, "hasNextPage": False}
_STEPS = 10
# A step every 0.1 s: the job ends while the API is away, its last lines unsent.
_JOB_SCRIPT = f"import time\nfor i in range({_STEPS}):\n    print('step', i, flush=True)\n    time.sleep(0.1)\n"
_PRINTED = "".join(f"step {i}\n" for i in range(_STEPS))


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _repository(folder: Path) -> dict[str, Any]:
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (folder / "job.py").write_text(_JOB_SCRIPT)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return {"kind": "git", "git_remote": str(folder), "git_commit": commit, "entry_point": ["python", "job.py"]}


class RestartingApi:
    """The API of one job, restarted (away for `away_s`, refusing connections; None: for good) once `goes_away`
    says so of a request it has just answered."""

    def __init__(self, source: dict[str, Any], goes_away: Callable[[str, dict[str, Any]], bool]) -> None:
        self.port = _unused_port()
        self.job = {
            "id": "job-1",
            "queue": "cpu",
            "entity": "acme",
            "project": "fraud",
            "state": "QUEUED",
            "source": source,
            "config": {},
            "overrides": {},
            "attempt": 0,
            "timeLimitS": None,
        }
        self.goes_away = goes_away
        self.away_s: float | None = 1.0
        self.restarted = False
        self.output: dict[str, str] = {}  # each piece by its commandId: a piece sent again is kept once
        self.ends: list[dict[str, Any]] = []
        self.returns: list[dict[str, Any]] = []
        self._server: TestServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/graphql", self._graphql)
        self._server = TestServer(app, port=self.port)
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _restart(self) -> None:
        await asyncio.sleep(0.05)  # its answer sent first
        await self.close()
        if self.away_s is not None:
            await asyncio.sleep(self.away_s)
            await self.start()

    async def _graphql(self, request: web.Request) -> web.Response:
        body = await request.json()
        query, given = body["query"], body["variables"].get("i", {})
        data = self._answer(query, given)
        if not self.restarted and self.goes_away(query, given):
            self.restarted = True
            asyncio.get_running_loop().create_task(self._restart())
        return web.json_response({"data": data})

    def _answer(self, query: str, given: dict[str, Any]) -> dict[str, Any]:
        if "viewer" in query:
            return {"viewer": {"id": "service:ci:agent"}}
        if "launchQueues" in query:
            return {"launchQueues": _QUEUES}
        if "waitingJobs" in query:
            waiting = [self.job] if self.job["state"] == "QUEUED" else []
            return {"waitingJobs": {"items": waiting, "endCursor": None, "hasNextPage": False}}
        if "claimJob" in query:
            self.job |= {"state": "RUNNING", "attempt": 1, "agentId": given["agentId"]}
            return {"claimJob": {"attempt": 1, "apiKey": "mr_attempt", "job": self.job}}
        if "captureJobOutput" in query:
            self.output[given.get("commandId") or str(len(self.output))] = given["text"]
            return {"captureJobOutput": True}
        if "reportJobFinished" in query:
            self.ends.append(given)
            self.job["state"] = given["state"]
            return {"reportJobFinished": {"state": given["state"]}}
        if "returnJob" in query:
            self.returns.append(given)
            self.job["state"] = "QUEUED"
            return {"returnJob": {"state": "QUEUED"}}
        if "launchJob" in query:
            return {"launchJob": {"state": self.job["state"], "agentId": self.job.get("agentId")}}
        return {"reportJobStarted": {"state": "RUNNING"}, "agentHeartbeat": True}


async def _ran_its_job(api: RestartingApi, **options: Any) -> LaunchAgent:
    """An agent of `api`, stopped once it has run the job: its report of the job's end taken, or not."""
    await api.start()
    agent = LaunchAgent(url=api.url, api_key="mr_x", queues=["cpu"], poll_s=0.05, **options)
    stopping = asyncio.Event()
    running = asyncio.create_task(agent.run(stopping))
    try:
        # Until the agent has run the job and let it go. Not "until the job is no longer queued": the claim's answer
        # was on its way when the job already showed RUNNING, and a busy CI stopped the agent before it ran it.
        ran = False
        async with asyncio.timeout(30):  # a hang, not a wait: the job takes about a second
            while not ran or agent._running:
                ran = ran or bool(agent._running)
                await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await running
        await api.close()
    return agent


async def test_a_job_runs_on_while_its_api_restarts_and_all_it_printed_arrives_after(tmp_path: Path) -> None:
    api = RestartingApi(_repository(tmp_path), goes_away=lambda query, _: "captureJobOutput" in query)

    await _ran_its_job(api)

    assert api.restarted
    assert "".join(api.output.values()) == _PRINTED  # in order, once, none of it lost
    assert [(end["state"], end["exitCode"]) for end in api.ends] == [("FINISHED", 0)]  # not killed


async def test_the_end_of_a_job_is_reported_once_its_api_is_back(tmp_path: Path) -> None:
    def after_its_last_line(query: str, given: dict[str, Any]) -> bool:
        return "captureJobOutput" in query and given["text"].endswith(f"step {_STEPS - 1}\n")

    api = RestartingApi(_repository(tmp_path), goes_away=after_its_last_line)

    await _ran_its_job(api)

    assert api.restarted
    assert "".join(api.output.values()) == _PRINTED
    assert [(end["state"], end["exitCode"]) for end in api.ends] == [("FINISHED", 0)]


async def test_an_end_the_api_never_takes_is_said_in_a_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    api = RestartingApi(_repository(tmp_path), goes_away=lambda query, _: "captureJobOutput" in query)
    api.away_s = None

    await _ran_its_job(api, report_retry_s=0.5)

    assert api.ends == []
    said = [r.getMessage() for r in caplog.records if "RUNNING while no agent runs it" in r.getMessage()]
    assert len(said) == 1 and "job job-1 attempt 1 ended (FINISHED), but the API did not take that report" in said[0]
    assert "modelreg job cancel job-1" in said[0]


async def test_an_agent_stopped_while_it_reports_a_jobs_end_sends_that_end_again_rather_than_give_the_job_back(
    tmp_path: Path,
) -> None:
    """Stopped (a redeploy) while the API was away and the end of a job that had exited 0 was being sent: the report
    was cancelled and the job given back, requeued, and run a second time."""

    def after_its_last_line(query: str, given: dict[str, Any]) -> bool:
        return "captureJobOutput" in query and given["text"].endswith(f"step {_STEPS - 1}\n")

    api = RestartingApi(_repository(tmp_path), goes_away=after_its_last_line)
    api.away_s = 1.5
    await api.start()
    agent = LaunchAgent(url=api.url, api_key="mr_x", queues=["cpu"], poll_s=0.05)
    stopping = asyncio.Event()
    running = asyncio.create_task(agent.run(stopping))
    try:
        async with asyncio.timeout(30):
            while not api.restarted:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # its process has ended; its end is being sent to an API still away
        stopping.set()
        async with asyncio.timeout(30):
            await running
    finally:
        await api.close()
    assert api.returns == []
    assert [(end["state"], end["exitCode"]) for end in api.ends] == [("FINISHED", 0)]

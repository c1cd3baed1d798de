"""What an agent does with a queue and a job's code and output: it passes over jobs it may not run, checks out only
commits, leaves nothing behind when that fails, passes no option to git from a job, and captures any output,
however long its lines, in whole lines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from modelreg.services.agent.agent import OUTPUT_KEPT_BYTES, LaunchAgent, Refused
from modelreg.services.agent.job_output import OUTPUT_FLUSH_BYTES, UNSENT_BYTES_HELD, JobOutput
from modelreg.services.agent.job_workspace import WorkspaceError, checkout


@pytest.fixture
def repository(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("print('hi')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return repo, commit


async def test_a_commit_is_checked_out_into_a_fresh_folder(repository: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = repository
    (tmp_path / "jobs").mkdir()
    folder = await checkout({"git_remote": str(repo), "git_commit": commit}, parent=tmp_path / "jobs")
    assert (folder / "train.py").read_text() == "print('hi')\n"


async def test_a_failed_checkout_leaves_no_folder_behind(repository: tuple[Path, str], tmp_path: Path) -> None:
    repo, _ = repository
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    with pytest.raises(WorkspaceError, match="git checkout --quiet failed"):
        await checkout({"git_remote": str(repo), "git_commit": "0" * 40}, parent=jobs)
    assert list(jobs.iterdir()) == []


async def test_a_job_passes_no_option_to_git(repository: tuple[Path, str], tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    with pytest.raises(WorkspaceError, match="is not a commit id"):
        await checkout({"git_remote": str(repository[0]), "git_commit": "--orphan=x"}, parent=jobs)
    marker = tmp_path / "ran"
    with pytest.raises(WorkspaceError, match="git clone --quiet failed: .*does not exist"):
        await checkout({"git_remote": f"--upload-pack=touch {marker}", "git_commit": "HEAD"}, parent=jobs)
    assert not marker.exists() and list(jobs.iterdir()) == []


class SentOutput:
    """What a job's output sends to the server, kept here."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def __call__(self, stream: str, text: str, piece: UUID) -> None:
        self.sent.append({"stream": stream, "text": text})


async def job(script: str, *python_options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *python_options, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def captured(process: asyncio.subprocess.Process, kept_bytes: int = OUTPUT_KEPT_BYTES) -> list[dict[str, str]]:
    output = SentOutput()
    await JobOutput(output, kept_bytes).capture({"STDOUT": process.stdout, "STDERR": process.stderr})
    assert await process.wait() == 0  # its pipes were read to the end: the job did not block on them
    return output.sent


async def test_output_with_a_line_longer_than_asyncios_limit_is_captured_whole() -> None:
    script = "import sys; sys.stdout.write('x' * 200_000 + 'é' * 40_000 + '\\n'); sys.stdout.flush()"
    sent = await captured(await job(script))
    assert "".join(chunk["text"] for chunk in sent) == "x" * 200_000 + "é" * 40_000 + "\n"


async def test_a_job_printing_without_end_keeps_a_bounded_record_and_runs_on() -> None:
    script = "import sys\nfor i in range(20_000):\n    print('step', i, 'x' * 100)\nprint('done', file=sys.stderr)"
    sent = await captured(await job(script), kept_bytes=100_000)  # of about 2.2 MB printed

    kept = "".join(chunk["text"] for chunk in sent if chunk["stream"] == "STDOUT")
    assert kept.startswith("step 0 ") and 100_000 <= len(kept) < 100_000 + 64 * 1024 + 200
    assert kept.endswith("[modelreg agent: stdout passed 100,000 bytes; the rest of it is not kept]\n")
    assert [chunk["text"] for chunk in sent if chunk["stream"] == "STDERR"] == ["done\n"]


async def test_output_is_sent_in_whole_lines_though_an_unbuffered_print_arrives_word_by_word() -> None:
    script = (
        "import time\nfor i in range(3):\n    print('joined', 'acme', i)\n    time.sleep(0.6)\nprint('no end', end='')"
    )
    texts = [chunk["text"] for chunk in await captured(await job(script, "-u"))]
    assert "".join(texts) == "joined acme 0\njoined acme 1\njoined acme 2\nno end"
    assert len(texts) > 1 and all(text.endswith("\n") for text in texts[:-1]) and texts[-1] == "no end"


async def test_stdout_and_stderr_come_back_in_the_order_the_job_printed_them() -> None:
    # Each stream flushed on its own gave out 0, 2, 4 and then err 1, 3, 5: a traceback apart from what led to it.
    script = (
        "import sys, time\nfor i in range(6):\n    print(i, file=sys.stderr if i % 2 else sys.stdout)\n"
        "    time.sleep(0.05)"
    )
    sent = await captured(await job(script, "-u"))
    lines = [(chunk["stream"], line) for chunk in sent for line in chunk["text"].splitlines()]
    assert lines == [("STDERR" if i % 2 else "STDOUT", str(i)) for i in range(6)]


async def test_part_lines_of_both_streams_past_64_kib_in_all_are_sent_not_held() -> None:
    # 40 KB on each stream without a line's end: each part line was kept for its end, and the agent's loop spun
    # without waiting, its heartbeats and its other jobs stopped with it.
    script = (
        "import sys, time\nsys.stdout.write('o' * 40_000); sys.stdout.flush()\nsys.stderr.write('e' * 40_000)\n"
        "sys.stderr.flush(); time.sleep(1.5)\nprint('.'); print('.', file=sys.stderr)"
    )
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.1)
            beats += 1

    async def alongside_a_heartbeat() -> list[dict[str, str]]:
        beating = asyncio.create_task(heartbeat())
        try:
            return await captured(await job(script))
        finally:
            beating.cancel()

    # In a thread of its own: a loop that never waits would hang this test's loop, not fail it.
    done: list[list[dict[str, str]]] = []
    thread = threading.Thread(target=lambda: done.append(asyncio.run(alongside_a_heartbeat())), daemon=True)
    thread.start()
    thread.join(30)
    assert done, "the capture did not end: its loop spun without waiting"
    sent = done[0]
    assert beats >= 10  # the loop went on meanwhile
    streams = {s: "".join(c["text"] for c in sent if c["stream"] == s) for s in ("STDOUT", "STDERR")}
    assert streams == {"STDOUT": "o" * 40_000 + ".\n", "STDERR": "e" * 40_000 + ".\n"}


async def test_a_job_printing_faster_than_its_output_is_sent_waits_for_it() -> None:
    # The server answering slowly (each chunk 0.2 s here): the agent holds a bounded amount, the job waits on its
    # prints, and nothing is lost.
    script = "import sys\nfor i in range(30_000):\n    print('step', i, 'x' * 60)"
    output = SentOutput()
    held = []

    async def slowly(stream: str, text: str, piece: UUID) -> None:
        held.append(capture._unsent + capture._sending)
        await asyncio.sleep(0.2)
        await output(stream, text, piece)

    process = await job(script)
    capture = JobOutput(slowly, OUTPUT_KEPT_BYTES)
    await capture.capture({"STDOUT": process.stdout, "STDERR": process.stderr})

    assert await process.wait() == 0
    printed = "".join(chunk["text"] for chunk in output.sent).splitlines()
    assert printed == [f"step {i} {'x' * 60}" for i in range(30_000)]
    assert max(held) <= UNSENT_BYTES_HELD + OUTPUT_FLUSH_BYTES  # what it holds, sent or not


async def test_a_job_printing_while_its_api_is_away_runs_on_and_its_newest_output_is_sent_after() -> None:
    # Over 1 MB printed while no send gets through: the job is not made to wait on its prints (the API is back only
    # once its pipes ended), and the agent holds at most 200 kB of it, the newest, the rest said to be left out.
    script = "for i in range(10_000):\n    print('step', i, 'x' * 100)"
    output = SentOutput()
    process = await job(script)

    async def once_the_job_printed_all(stream: str, text: str, piece: UUID) -> None:
        assert process.stdout is not None
        if not process.stdout.at_eof():
            raise httpx.ConnectError("All connection attempts failed")
        held.append(capture._unsent + capture._sending)
        await output(stream, text, piece)

    held: list[int] = []
    capture = JobOutput(
        once_the_job_printed_all,
        OUTPUT_KEPT_BYTES,
        sent_again_after=lambda exc: isinstance(exc, httpx.ConnectError),
        held_while_away=200_000,
    )
    await capture.capture({"STDOUT": process.stdout, "STDERR": process.stderr})

    assert await process.wait() == 0
    printed = "".join(f"step {i} {'x' * 100}\n" for i in range(10_000))
    before, _, rest = "".join(chunk["text"] for chunk in output.sent).partition("[modelreg agent: ")
    note, _, after = rest.partition("]\n")
    assert "bytes of stdout left out here: the API did not answer" in note
    assert printed.startswith(before.removesuffix("\n"))  # the piece being sent when the API went away
    assert printed.endswith(after) and after.startswith("step ")  # the newest, from a line's start
    assert max(held) <= 200_000 + OUTPUT_FLUSH_BYTES


class SharedQueue(LaunchAgent):
    """An agent polling a queue whose head holds another team's jobs, which its key may not claim."""

    def __init__(self, foreign: int) -> None:
        super().__init__(url="http://unused", api_key="unused", queues=["gpu"], agent_id="service:b:host")
        self.waiting = [{"id": f"foreign-{n}", "entity": "teama"} for n in range(foreign)] + [
            {"id": "ours", "entity": "teamb"}
        ]
        self.started: list[str] = []
        self.claimed: list[str] = []
        self.asked_for: list[list[str] | None] = []  # the entities of each waitingJobs page asked for

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        variables = variables or {}
        if "waitingJobs" in query:
            self.asked_for.append(variables["e"])
            start = int(variables["after"] or 0)
            page = self.waiting[start : start + 20]
            more = start + 20 < len(self.waiting)
            return {"waitingJobs": {"items": page, "endCursor": str(start + 20), "hasNextPage": more}}
        job_id = variables["i"]["id"]
        self.claimed.append(job_id)
        if job_id.startswith("foreign"):
            raise Refused("user:mallory's job: this key holds no member role on entity:teama", "FORBIDDEN")
        return {"claimJob": {"attempt": 1, "apiKey": "mr_attempt", "job": {"id": job_id}}}

    async def _run_job(self, job: dict[str, Any], attempt: int, api_key: str) -> None:
        self.started.append(job["id"])


async def test_another_teams_jobs_at_the_head_of_a_shared_queue_do_not_hold_up_the_agents_own() -> None:
    agent = SharedQueue(foreign=45)
    await agent._take_jobs()
    await asyncio.sleep(0)
    assert agent.started == ["ours"]


async def test_a_job_the_agents_key_was_refused_is_tried_again_later_as_a_grant_may_have_come_since() -> None:
    agent = SharedQueue(foreign=1)
    agent.waiting = agent.waiting[:1]  # another team's job alone
    await agent._take_jobs()
    await agent._take_jobs()  # at once: not asked again
    assert agent.claimed == ["foreign-0"]
    agent.refused_retry_s = 0.0
    await agent._take_jobs()
    assert agent.claimed == ["foreign-0", "foreign-0"]


async def test_an_agent_named_for_its_teams_claims_no_other_teams_job_even_where_its_key_may() -> None:
    agent = SharedQueue(foreign=3)
    agent.entities = frozenset({"teamb"})
    await agent._take_jobs()
    assert agent.claimed == ["ours"]
    assert agent.asked_for == [["teamb"]]  # the server leaves the other teams' jobs out of the page


def test_the_agent_keeps_its_environment_and_its_key_from_jobs_run_as_its_own_user() -> None:
    # Not dumpable: the kernel then gives /proc/<agent>/environ (and its memory) to root, so a job of the agent's
    # user gets "permission denied" there. Checked through the flag: the tests may run as root, who reads it all.
    code = (
        "import ctypes; from modelreg.services.agent.agent import keep_environment_private; "
        "libc = ctypes.CDLL('libc.so.6'); before = libc.prctl(3); keep_environment_private(); "
        "print(before, libc.prctl(3))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["1", "0"]  # PR_GET_DUMPABLE before and after

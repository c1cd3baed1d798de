"""What a run records of its code: the patch a clone applies gives back, byte for byte, the tracked files as they
were and the untracked Python files beside them; secrets and data are left out; nothing a working tree holds
fails `init`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelreg import run_code

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "train.py").write_bytes(b"print('train')\r\n")
    (folder / ".gitignore").write_text("data/\n")
    subprocess.run([*GIT, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*GIT, "add", "."], cwd=folder, check=True)
    subprocess.run([*GIT, "commit", "-qm", "one"], cwd=folder, check=True)
    monkeypatch.chdir(folder / "src")  # a script started below the repository's root
    return folder


def cloned_with(repo: Path, state: dict[str, Any], into: Path) -> Path:
    """A fresh checkout of the recorded commit with the recorded patch applied, as a Launch agent makes it."""
    subprocess.run(["git", "clone", "-q", str(repo), str(into)], check=True)
    subprocess.run(["git", "checkout", "-q", state["commit"]], cwd=into, check=True)
    subprocess.run(["git", "apply", "-"], cwd=into, input=state["diff"].encode(), check=True)
    return into


def test_a_clone_gets_back_changed_and_untracked_code_byte_for_byte(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_bytes(b"from helpers import greet\r\ngreet()\r\n")  # CRLF line ends kept
    (repo / "helpers.py").write_bytes(b"def greet():\n    print('50%\\r100%')\r\n")
    (repo / "src" / "a[1].py").write_text("A = 1\n")  # a name git would read as a pattern
    (repo / "src" / "a1.py").write_text("A1 = 1\n")
    (repo / "src" / "caf\u00e9 menu.py").write_text("MENU = 'cr\u00eape'\n")
    (repo / "weights.bin").write_bytes(bytes(range(256)) * 8)  # not code: not recorded

    state = run_code.git_state()

    assert state is not None
    assert state["untracked"] == ["helpers.py", "src/a1.py", "src/a[1].py", "src/caf\u00e9 menu.py"]
    clone = cloned_with(repo, state, tmp_path / "clone")
    for name in ("train.py", "helpers.py", "src/a[1].py", "src/a1.py", "src/caf\u00e9 menu.py"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes(), name
    assert not (clone / "weights.bin").exists()
    # The user's staging area is as it was: the untracked files are still untracked.
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, check=True).stdout
    assert b"?? helpers.py" in status.splitlines()


def test_a_file_no_longer_tracked_comes_back_as_it_is_on_disk(repo: Path, tmp_path: Path) -> None:
    # `git rm --cached` to stop tracking a local file: against HEAD its patch was one git apply refused.
    (repo / "local.py").write_text("SETTING = 1\n")
    subprocess.run([*GIT, "add", "local.py"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "local"], cwd=repo, check=True)
    subprocess.run(["git", "rm", "-q", "--cached", "local.py"], cwd=repo, check=True)
    (repo / "local.py").write_text("SETTING = 2\n")

    state = run_code.git_state()

    assert state is not None and state["untracked"] == ["local.py"]
    assert (cloned_with(repo, state, tmp_path / "clone") / "local.py").read_text() == "SETTING = 2\n"


def test_the_users_diff_settings_do_not_change_the_record(repo: Path, tmp_path: Path) -> None:
    # diff.relative named paths from the script's folder (src/ here) and left out the changes above it.
    for setting, value in (("diff.relative", "true"), ("diff.noprefix", "true"), ("color.diff", "always")):
        subprocess.run(["git", "config", setting, value], cwd=repo, check=True)
    (repo / "train.py").write_text("print('changed at the root')\n")

    state = run_code.git_state()

    assert state is not None
    assert (cloned_with(repo, state, tmp_path / "clone") / "train.py").read_text() == "print('changed at the root')\n"


def test_secrets_folders_of_other_code_and_ignored_files_are_not_recorded(repo: Path) -> None:
    (repo / ".env").write_text("AWS_SECRET_ACCESS_KEY=hidden\n")
    (repo / "kaggle.json").write_text('{"key": "hidden"}\n')
    (repo / ".secrets").mkdir()
    (repo / ".secrets" / "keys.py").write_text("KEY = 'hidden'\n")
    (repo / "venv" / "lib").mkdir(parents=True)
    (repo / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (repo / "venv" / "lib" / "six.py").write_text("# hidden\n")
    (repo / "env" / "conda-meta").mkdir(parents=True)
    (repo / "env" / "abc.py").write_text("# hidden\n")
    (repo / "modelreg" / "run-x" / "files").mkdir(parents=True)
    (repo / "modelreg" / "run-x" / "files" / "saved.py").write_text("# hidden\n")
    (repo / "data").mkdir()
    (repo / "data" / "load.py").write_text("# hidden\n")  # ignored by .gitignore

    state = run_code.git_state()

    assert state is not None and state["untracked"] == [] and "hidden" not in state["diff"]
    assert "untracked_omitted" not in state


def test_untracked_code_that_is_not_utf8_or_too_large_is_named_not_recorded(repo: Path) -> None:
    (repo / "legacy.py").write_bytes("NAME = 'caf\u00e9'\n".encode("latin-1"))
    (repo / "table.py").write_text("TABLE = [\n" + "    0,\n" * 120_000 + "]\n")  # 840 KB
    (repo / "lines.py").write_text("\n" * 200_000)  # 200 KB, whose patch is twice that
    (repo / "small.py").write_text("SMALL = 1\n")

    state = run_code.git_state()

    assert state is not None
    assert state["untracked"] == ["lines.py", "small.py"]
    assert (state["untracked_omitted"], state["untracked_omitted_count"]) == (["legacy.py", "table.py"], 2)
    assert len(state["diff"].encode()) <= run_code.MAX_DIFF_BYTES


def test_a_tracked_change_that_is_not_utf8_is_not_recorded_and_says_so(repo: Path) -> None:
    (repo / "train.py").write_bytes("print('caf\u00e9')\n".encode("latin-1"))

    state = run_code.git_state()

    assert state is not None
    assert (state["diff"], state["diff_not_text"]) == ("", True) and state["diff_omitted_bytes"] > 0


def test_a_repository_without_a_commit_records_no_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run([*GIT, "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    assert run_code.git_state() is None

"""Benchmarks that need no running parts are run here once, small, so that a change of the code they drive
breaks a test instead of the benchmark itself months later. Their figures are not checked (never a timed assert)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_graphql_middleware_benchmark_still_runs_against_the_current_schema() -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH / "graphql_middleware.py"), "--runs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    last_line = finished.stdout.strip().splitlines()[-1]
    assert {pair.split("=")[0] for pair in last_line.split()} == {"without_ms", "with_ms", "overhead_pct"}

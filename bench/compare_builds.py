"""Two builds of modelreg measured by the same benchmark, in turn: a commit (the one before a change) and the
checkout as it is now (with its uncommitted edits).

Each build is installed into a folder of its own and put first on PYTHONPATH for its runs, and for every
process the benchmark starts: `modelreg` otherwise runs whatever was last installed into the environment,
not the checkout, and both sides of a comparison can turn out to be the same code. Rounds alternate the two
builds, so that what else the machine does falls on both alike. The benchmark's last line (key=value pairs)
is read from each run; the last line printed here is the means, each key prefixed with its build.

Usage: python bench/compare_builds.py BASE [--rounds 3] -- python bench/quick.py [its arguments]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def install(source: Path, into: Path) -> None:
    """The build at `source` (a checkout) into `into`, without its dependencies (the environment has them)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(into), str(source)], check=True
    )


def install_commit(commit: str, into: Path, scratch: Path) -> None:
    checkout = scratch / "checkout"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(checkout), commit], check=True)
    try:
        install(checkout, into)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(checkout)], check=True)


def figures(output: str) -> dict[str, float]:
    """The key=value pairs of a benchmark's last line."""
    last = output.strip().splitlines()[-1] if output.strip() else ""
    pairs = dict(pair.split("=", 1) for pair in last.split() if "=" in pair)
    try:
        return {key: float(value) for key, value in pairs.items()}
    except ValueError:
        raise SystemExit(f"the benchmark's last line is not key=value pairs of numbers: {last!r}") from None


def environment(build: Path) -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(build), os.environ.get("PYTHONPATH")]))}
    found = subprocess.run(
        [sys.executable, "-c", "import modelreg; print(modelreg.__file__)"], env=env, capture_output=True, text=True
    ).stdout.strip()
    if not found.startswith(str(build)):
        raise SystemExit(f"modelreg is imported from {found or 'nowhere'}, not from the build in {build}")
    return env


def measure(command: list[str], build: Path) -> dict[str, float]:
    done = subprocess.run(command, env=environment(build), cwd=REPO, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}) with the build in {build}")
    return figures(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the commit to compare the checkout with (e.g. HEAD~2, a tag, a hash)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each build, alternating")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        parser.error("give the benchmark after --, e.g. -- python bench/quick.py")

    with tempfile.TemporaryDirectory(prefix="modelreg-builds-") as scratch:
        builds = {"base": Path(scratch) / "base", "checkout": Path(scratch) / "checkout-build"}
        print(f"installing {args.base} and the checkout ...", file=sys.stderr, flush=True)
        install_commit(args.base, builds["base"], Path(scratch))
        install(REPO, builds["checkout"])
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
        for round_ in range(1, args.rounds + 1):
            for name, build in builds.items():
                print(f"round {round_} of {args.rounds}: {name} ...", file=sys.stderr, flush=True)
                runs[name].append(measure(command, build))
                print(f"  {name}: {runs[name][-1]}", flush=True)

    keys = [key for key in runs["base"][0] if all(key in run for results in runs.values() for run in results)]
    print(f"{'figure':<45} {'base (' + args.base + ')':>24} {'checkout':>24}")
    for key in keys:
        cells = [", ".join(f"{run[key]:g}" for run in runs[name]) for name in builds]
        print(f"{key:<45} {cells[0]:>24} {cells[1]:>24}")
    means = {f"{name}_{key}": statistics.mean(run[key] for run in runs[name]) for name in builds for key in keys}
    print(" ".join(f"{key}={value:g}" for key, value in means.items()))


if __name__ == "__main__":
    main()

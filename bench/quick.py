"""The regression guard: bench/ingest.py's headline figures at reduced size, next to bench/baseline.json.

Kafka end to end (append -> every projection applied), every projection rebuilt side by side, and
set-alias with read-your-writes (p50, p99), in under two minutes. Run it before resolving an issue and
say what moved. Figures on a shared machine are noisy: a move of a few percent is not a regression. The
projections run in three processes (audit; registry; the rest), the layout the baseline was recorded in;
bench/ingest.py measures the deployed one (one projector process) too.
`--record` writes this run's figures as the new baseline (with the commit they were measured on).
The last line is key=value pairs. Usage: python bench/quick.py [--record] [--events N] [--commands N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' generated histories

from infrastructure import infrastructure  # noqa: E402
from ingest import command_latency, end_to_end_and_rebuild, raw_rate, say  # noqa: E402
from support.history import registry_history  # noqa: E402

from modelreg.events.codec import encode  # noqa: E402

BASELINE = Path(__file__).resolve().parent / "baseline.json"

# name -> (what it is, True when higher is better)
FIGURES = {
    "raw_events_per_s": ("raw aiokafka produce->consume, events/s", True),
    "end_to_end_events_per_s": ("Kafka end to end (append -> every projection applied), events/s", True),
    "rebuild_all_side_by_side_events_per_s": ("rebuild, every projection side by side, events/s", True),
    "rebuild_all_one_command_events_per_s": ("rebuild, every projection in one command, events/s", True),
    "command_p50_ms": ("set-alias with read-your-writes, p50 ms", False),
    "command_p99_ms": ("set-alias with read-your-writes, p99 ms", False),
}


async def measure(events_n: int, commands: int, warm_up: int) -> dict[str, float]:
    events = registry_history(events_n, collections=40, models=8)
    payloads = [(e.stream.encode(), encode(e)) for e in events]
    with infrastructure() as infra:
        raw = await raw_rate(infra, payloads)
        end_to_end, rebuilds = await end_to_end_and_rebuild(infra, events, each_alone=False, deployed=False)
        del events, payloads
        gc.collect()
        latencies = await command_latency(infra, commands, warm_up, split=True)
    return {
        "raw_events_per_s": round(raw),
        "end_to_end_events_per_s": round(end_to_end),
        "rebuild_all_side_by_side_events_per_s": round(rebuilds["all, side by side"]),
        "rebuild_all_one_command_events_per_s": round(rebuilds["all, one command"]),
        "command_p50_ms": round(statistics.median(latencies), 1),
        "command_p99_ms": round(statistics.quantiles(latencies, n=100)[98], 1),
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument("--record", action="store_true", help="Write these figures to bench/baseline.json.")
    args = parser.parse_args()

    started = time.perf_counter()
    load_before = _load_average()
    figures = asyncio.run(measure(args.events, args.commands, args.warm_up))
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {"figures": {}}
    say(f"{args.events} events, {args.commands} commands; load average {load_before} at the start")
    say(f"{'figure':<72} {'now':>10} {'baseline':>10} {'change':>8}")
    for name, (label, higher_is_better) in FIGURES.items():
        now, before = figures[name], baseline["figures"].get(name)
        if before:
            change = (now - before) / before
            better = change > 0 if higher_is_better else change < 0
            shown = f"{change:+.0%}" + ("" if abs(change) < 0.1 else (" better" if better else " WORSE"))
        else:
            shown = "-"
        say(f"{label:<72} {now:>10,} {before if before is not None else '-':>10} {shown:>8}")
    took = time.perf_counter() - started
    say(f"baseline: commit {baseline.get('commit', '-')}, {baseline.get('measured', '-')}; this run took {took:.0f} s")
    if args.record:
        BASELINE.write_text(
            json.dumps(
                {
                    "commit": _commit(),
                    "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "events": args.events,
                    "commands": args.commands,
                    "load_average_at_start": load_before,
                    "figures": figures,
                },
                indent=2,
            )
            + "\n"
        )
        say(f"recorded as the baseline in {BASELINE}")
    say(" ".join(f"{name}={value}" for name, value in figures.items()))


if __name__ == "__main__":
    main()

"""Where the CPU goes: reads py-spy's raw (collapsed) samples of a benchmark run and sums them per process
and per step.

Record first (py-spy is in the `bench` extra; it samples the benchmark and every modelreg process it starts):
    py-spy record --subprocesses --rate 250 -f raw -o /tmp/quick.txt -- python bench/quick.py
then: python bench/cpu_steps.py /tmp/quick.txt [--commands N]
With --commands, the API process and the projectors started last (the command phase of bench/ingest.py and
bench/quick.py) are also shown as CPU milliseconds per command. The last line is key=value pairs.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

IDLE = ("select (selectors.py", "EpollSelector.select", "poll (selectors.py")

# A sample's step is the first rule, in this order, that names a frame of its stack.
STEPS = [
    ("start-up (imports)", ("<frozen importlib",)),
    ("decode events (orjson + pydantic)", ("codec.py", "written.py")),
    ("encode events", ("encode (modelreg/events/codec.py",)),
    ("GraphQL parse + validate", ("graphql/language/", "graphql/validation/", "documents.py")),
    ("command: validate + decide", ("services/commands/",)),
    ("GraphQL execute (resolvers)", ("graphql/execution/", "modelreg/graphql/")),
    ("read-your-writes wait", ("progress.py",)),
    ("projection statements", ("batch_statements", "statements (modelreg/projections/", "execution_plan")),
    ("asyncpg (encode, protocol)", ("asyncpg/",)),
    ("Kafka client (aiokafka)", ("aiokafka/",)),
    ("HTTP (aiohttp)", ("aiohttp/",)),
    ("projection runtime", ("projections/runtime.py", "projections/log_reader.py")),
    ("event loop, other", ("",)),
]


def role_of(process_frame: str) -> str:
    for role in ("api", "projector", "rebuild", "server"):
        if re.search(rf"modelreg\.services\.cli {role}\b", process_frame):
            return role
    if "multiprocessing" in process_frame:
        return "rebuild"  # the replay processes a rebuild spawns
    return "benchmark" if "bench/" in process_frame else "other"


def step_of(stack: str) -> str:
    for step, markers in STEPS:
        if any(marker in stack for marker in markers):
            return step
    return STEPS[-1][0]


def read(path: Path) -> dict[tuple[str, int], Counter[str]]:
    """(role, pid) -> samples per step."""
    found: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        # With --subprocesses a child's stack starts with its parents' process frames: the last one is its own.
        processes = re.findall(r'process (\d+):"([^"]*)"', stack)
        if not processes or not count.isdigit():
            continue
        pid, command = processes[-1]
        if stack.rsplit(";", 1)[-1].startswith(IDLE):
            continue  # waiting in epoll: py-spy counts it as running when it cannot tell
        found[(role_of(command), int(pid))][step_of(stack)] += int(count)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("samples", type=Path)
    parser.add_argument("--rate", type=int, default=250, help="py-spy's --rate (samples per second)")
    parser.add_argument("--commands", type=int, default=0, help="commands sent in the command phase")
    args = parser.parse_args()
    ms = 1000 / args.rate
    processes = read(args.samples)
    by_role: dict[str, Counter[str]] = defaultdict(Counter)
    for (role, _pid), steps in processes.items():
        by_role[role].update(steps)
    for role, steps in sorted(by_role.items()):
        total = sum(steps.values())
        print(f"\n{role}: {total * ms / 1000:.1f} s of CPU in {sum(1 for r, _ in processes if r == role)} processes")
        for step, samples in steps.most_common():
            print(f"  {step:<40} {samples * ms / 1000:>8.2f} s  {samples / total:>5.0%}")
    if args.commands:
        api = [key for key in processes if key[0] == "api"]
        projectors = sorted(pid for role, pid in processes if role == "projector")
        last = [("projector", pid) for pid in projectors if api and pid < api[-1][1]][-3:]
        per_command: Counter[str] = Counter()
        for key in (*api[-1:], *last):  # start-up is paid once per process, not per command
            per_command.update({f"{key[0]}: {s}": n for s, n in processes[key].items() if s != STEPS[0][0]})
        print(f"\nCPU per command (API process and the {len(last)} projectors of the command phase):")
        for step, samples in per_command.most_common():
            print(f"  {step:<52} {samples * ms / args.commands:>6.2f} ms")
        total = sum(per_command.values()) * ms / args.commands
        print(f"  {'total':<52} {total:>6.2f} ms")
        print(f"cpu_ms_per_command={total:.2f}")


if __name__ == "__main__":
    main()

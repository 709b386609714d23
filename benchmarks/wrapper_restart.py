"""Restart latency of restart-wrapper against `entr -r`, measured in one run on the same child.

Latency = the restart file's write completing -> the new child's first instruction (CLOCK_MONOTONIC,
stamped by a static C child, so neither number includes an interpreter's start-up).
Also: binary size, peak RSS after the restarts, and CPU used while idle.

    .venv/bin/python -m benchmarks.wrapper_restart [--restarts N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.stats import percentile
from tests.support.processes import stop
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ROOT / "build" / "restart-wrapper"


def build_child(directory: Path) -> Path:
    child = directory / "start-stamp"
    compiler = shutil.which("musl-gcc") or "cc"
    subprocess.run([compiler, "-O2", "-static", "-o", str(child), str(ROOT / "benchmarks" / "start_stamp.c")], check=True)
    return child


def stamps(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def wait_for_stamps(log: Path, n: int, timeout: float = 10.0) -> list[int]:
    return wait_until(lambda: len(got := stamps(log)) >= n and got, timeout, interval=0.0005, what=f"{n} starts")


def measure(argv: list[str], trigger: Path, log: Path, restarts: int, stdin: str | None = None) -> tuple[list[float], subprocess.Popen]:
    process = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if stdin is not None:
        process.stdin.write(stdin.encode())
        process.stdin.close()
    wait_for_stamps(log, 1)
    time.sleep(0.2)  # let the watcher settle before the first trigger
    latencies = []
    for i in range(restarts):
        with open(trigger, "w") as f:
            f.write(str(i))
        written = time.monotonic_ns()
        started = wait_for_stamps(log, i + 2)[-1]
        latencies.append((started - written) / 1e6)
        # Let each restart settle: entr collates events for 50 ms and loses a write that lands
        # while it re-arms its watch, so both get the same generous pause between triggers.
        time.sleep(0.15)
    return latencies, process


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args()
    if not WRAPPER.exists():
        raise SystemExit("build/restart-wrapper is missing: run `make wrapper`")
    entr = shutil.which("entr")
    if entr is None:
        raise SystemExit("entr is missing: `make bench` installs it (Debian package entr)")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        child = build_child(directory)
        results = {}

        trigger, log = directory / "ours.trigger", directory / "ours.log"
        ours, process = measure([str(WRAPPER), "run", f"--restart-file={trigger}", "--", str(child), str(log)],
                                trigger, log, args.restarts)
        rss = peak_rss_kib(process.pid)
        before = cpu_ticks(process.pid)
        time.sleep(args.idle_seconds)
        idle_ticks = cpu_ticks(process.pid) - before
        stop(process)
        results["restart-wrapper"] = ours

        trigger, log = directory / "entr.trigger", directory / "entr.log"
        trigger.write_text("start")
        theirs, process = measure([entr, "-r", "-n", str(child), str(log)], trigger, log, args.restarts,
                                  stdin=f"{trigger}\n")
        entr_rss = peak_rss_kib(process.pid)
        stop(process)
        results["entr -r"] = theirs

    tick = os.sysconf("SC_CLK_TCK")
    print(f"restart latency over {args.restarts} restarts (write of the restart file -> new child running)")
    print(f"{'':18} {'median ms':>10} {'p95 ms':>10} {'max ms':>10}")
    for name, values in results.items():
        print(f"{name:18} {statistics.median(values):10.2f} {percentile(values, 95):10.2f} {max(values):10.2f}")
    ratio = statistics.median(results["restart-wrapper"]) / statistics.median(results["entr -r"])
    print(f"median ratio restart-wrapper / entr -r: {ratio:.3f} (target <= 0.2)")
    print(f"binary size: {WRAPPER.stat().st_size / 1024:.1f} KiB (target <= 100 KiB)")
    print(f"peak RSS: restart-wrapper {rss} KiB, entr {entr_rss} KiB")
    print(f"idle CPU over {args.idle_seconds:.0f}s: {idle_ticks} ticks ({idle_ticks / tick * 1000:.0f} ms)")


if __name__ == "__main__":
    main()

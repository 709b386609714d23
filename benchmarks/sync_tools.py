"""The wrapper's `tar -x` and `rm -rf` against GNU tar and coreutils rm, in one run on the same input.

What a live update costs inside the container: Tilt pipes an archive into `tar -C / -x -f -`
and deletes with `rm -rf`. Three archives, each extracted `--rounds` times (interleaved, into
a directory that already holds the previous round's files, as a sync finds them):
  - one edit: 1 file of 4 KiB (the common case: the tool's start-up dominates);
  - a source tree: 2,000 files of 2 KiB in 100 directories;
  - a binary: 1 file of 64 MiB.
Then `rm -rf` of the source tree. Each figure is a median in milliseconds of the whole process
(fork, exec, work, exit), and the ratio to the GNU tool measured alongside it.

Where the files land matters: on a disk, creating 2,000 files is the filesystem's work and its
time varies from run to run by a factor of two for either tool (ext4 here: 0.4x to 2x between
runs); `--directory /dev/shm` measures the tools themselves.

    .venv/bin/python -m benchmarks.sync_tools [--rounds N] [--directory DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from benchmarks.stats import percentile

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ROOT / "build" / "restart-wrapper"


def archive(files: dict[str, bytes]) -> bytes:
    """A PAX archive as Go's archive/tar (Tilt, kubectl) writes them: directories first, uid 0."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(name).parent) for name in files} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TREE = "source tree (2,000 x 2 KiB)"  # also the tree `rm -rf` removes


def cases() -> dict[str, bytes]:
    tree = {f"app/src/d{i % 100:03d}/f{i:04d}.go": os.urandom(2048) for i in range(2000)}
    return {
        "one edit (1 x 4 KiB)": archive({"app/data/greeting.txt": os.urandom(4096)}),
        TREE: archive(tree),
        "binary (1 x 64 MiB)": archive({"app/bin/server": os.urandom(64 << 20)}),
    }


def timed(argv: list[str], stdin: bytes | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, input=stdin, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--directory", help="where to extract (default: the system's temporary directory)")
    args = parser.parse_args(argv)
    gnu_tar, gnu_rm = shutil.which("tar"), shutil.which("rm")
    if not (WRAPPER.exists() and gnu_tar and gnu_rm):
        parser.error("needs build/restart-wrapper (make wrapper), GNU tar and coreutils rm")
    tools = {"GNU": ([gnu_tar], [gnu_rm]), "restart-wrapper": ([str(WRAPPER), "tar"], [str(WRAPPER), "rm"])}

    print(f"{'':30} {'GNU median':>11} {'ours median':>12} {'ours p95':>9} {'ours/GNU':>9}")
    with tempfile.TemporaryDirectory(prefix="sync-tools-bench-", dir=args.directory) as scratch:
        archives = cases()
        for name, data in archives.items():
            times: dict[str, list[float]] = {tool: [] for tool in tools}
            targets = {tool: Path(scratch) / tool for tool in tools}
            for target in targets.values():
                target.mkdir()
            for _ in range(args.rounds):
                for tool, (tar, _) in tools.items():
                    times[tool].append(timed([*tar, "-C", str(targets[tool]), "-x", "-f", "-"], data))
            report(name, times)
            for target in targets.values():
                shutil.rmtree(target)

        tree = archives[TREE]
        times = {tool: [] for tool in tools}
        for _ in range(max(3, args.rounds // 3)):
            for tool, (tar, rm) in tools.items():
                target = Path(scratch) / f"rm-{tool}"
                target.mkdir()
                subprocess.run([gnu_tar, "-C", str(target), "-x", "-f", "-"], input=tree, check=True)
                times[tool].append(timed([*rm, "-rf", str(target)]))
        report("rm -rf the source tree", times)
    print(f"restart-wrapper: {WRAPPER.stat().st_size:,} bytes")
    return 0


def report(name: str, times: dict[str, list[float]]) -> None:
    gnu, ours = statistics.median(times["GNU"]), statistics.median(times["restart-wrapper"])
    print(f"{name:30} {gnu:9.2f}ms {ours:10.2f}ms {percentile(times['restart-wrapper'], 95):7.2f}ms {ours / gnu:8.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())

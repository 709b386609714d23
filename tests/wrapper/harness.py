"""Running the real restart-wrapper binary and watching what it does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
CHILD = [sys.executable, str(Path(__file__).with_name("child.py"))]
# The ASan build also checks for leaks at exit (LeakSanitizer needs ptrace, which this machine allows).
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
ENV = {**os.environ, **SANITIZER_ENV}


class Wrapper:
    """One `restart-wrapper run` process supervising a child.py program."""

    def __init__(self, binary: Path, tmp: Path, mode: str = "sleep", *extra: str, options=(), restart_file=None, prefix=()):
        self.log = tmp / "child.log"
        self.restart_file = restart_file or tmp / "restart"
        self.stderr_path = tmp / "wrapper.stderr"
        argv = [*prefix, str(binary), "run", f"--restart-file={self.restart_file}", *options, "--",
                *CHILD, mode, str(self.log), *extra]
        self.stderr_file = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                        env=ENV)
        self.wait_starts(1)

    def lines(self, prefix: str) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [l.split() for l in self.log.read_text().splitlines() if l.startswith(prefix)]

    def starts(self) -> list[tuple[int, float]]:
        return [(int(pid), float(t)) for _, pid, t in self.lines("start")]

    def wait_starts(self, n: int, timeout: float = 10.0) -> list[tuple[int, float]]:
        return wait_until(lambda: len(self.starts()) >= n and self.starts(), timeout, what=f"{n} starts")

    def assert_starts_stay(self, n: int, settle: float = 0.6) -> None:
        """Exactly n starts, and still n after a while: no late extra restart."""
        self.wait_starts(n)
        time.sleep(settle)
        assert len(self.starts()) == n, self.log.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stderr_file.close()
            assert "runtime error" not in self.stderr() and "AddressSanitizer" not in self.stderr(), self.stderr()


def processes() -> dict[int, dict]:
    """pid -> {ppid, pgid, state} for every process we can see."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry)] = {"state": fields[0], "ppid": int(fields[1]), "pgid": int(fields[2])}
    return found


def alive(pid: int) -> bool:
    info = processes().get(pid)
    return info is not None and info["state"] != "Z"

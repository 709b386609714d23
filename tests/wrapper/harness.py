"""Running the real restart-wrapper binary and watching what it does."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.waiting import wait_until

from . import emulation

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
# Every test runs against each build: this machine's release build ("static"), the ASan+UBSan
# build ("asan"), and the release build of each other architecture the image ships (the Makefile's
# WRAPPER_ARCHES), named by it ("arm64" on amd64), run under qemu-user (emulation.py).
FOREIGN = [arch for arch in ("amd64", "arm64") if emulation.emulated(arch)]
BUILDS = {"static": BUILD / "restart-wrapper", "asan": BUILD / "restart-wrapper-asan",
          **{arch: BUILD / f"linux-{arch}" / "restart-wrapper" for arch in FOREIGN}}
RELEASES = ["static", *FOREIGN]  # the builds that ship: static, stripped, in the size budget
# What qemu-user makes an emulated build say that it would not say on its own architecture: qemu
# 7.2 does not implement prctl(PR_SET_CHILD_SUBREAPER) (it answers EINVAL), and `run` reports that
# as its first line. Tests that compare what `run` writes compare it without that line
# (without_emulator_line); test_emulation.py checks the line is there and what the binary asked for.
EMULATOR_SUBREAPER_LINE = ("restart-wrapper: cannot become a child subreaper (Invalid argument): orphans of "
                           "COMMAND will not be reaped or stopped\n")


def runnable(build: str) -> Path:
    """The build's binary, checked to be there and to run here (another architecture's: under
    qemu-user, which this sets up if need be, as root: emulation.ensure)."""
    import pytest

    binary = BUILDS[build]
    if not binary.exists():
        pytest.fail(f"{binary} is missing: `make wrapper wrapper-asan` builds it (make test does)")
    if build in FOREIGN:
        why = emulation.ensure(build)
        if why and "needs root" in why:
            pytest.skip(why)
        if why:
            pytest.fail(why)
    return binary


def architecture_of(binary: Path) -> str | None:
    """The architecture an ELF executable is built for ("amd64", "arm64"), from its e_machine."""
    with open(binary, "rb") as f:
        header = f.read(20)
    machine = {62: "amd64", 183: "arm64"}.get(int.from_bytes(header[18:20], "little"))
    return machine if header[:4] == b"\x7fELF" else None


def without_emulator_line(stderr, binary: Path):
    """What `restart-wrapper run` wrote (str or bytes), as it would be on the binary's own
    architecture: for an emulated build, the first line if it is EMULATOR_SUBREAPER_LINE is dropped."""
    arch = architecture_of(binary)
    if arch is None or not emulation.emulated(arch):
        return stderr
    line = EMULATOR_SUBREAPER_LINE if isinstance(stderr, str) else EMULATOR_SUBREAPER_LINE.encode()
    return stderr.removeprefix(line)


CHILD = [sys.executable, str(Path(__file__).with_name("child.py"))]
# The ASan build also checks for leaks at exit (LeakSanitizer needs ptrace, which this machine allows).
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
ENV = {**os.environ, **SANITIZER_ENV}
ENV.pop("RESTART_WRAPPER_RESTART_FILE", None)  # `trigger` reads it; tests set it when they mean to
ENV.pop("RESTART_WRAPPER_SYNC_FILE", None)  # tar and rm report to it; tests set it when they mean to
# For the tools (tar, rm, test) as in an image that has none of its own: nothing on PATH to hand
# what they do not implement to (test_sync.py puts a tool there to check the hand-off).
NO_OTHER_TOOLS = {**ENV, "PATH": "/nonexistent"}
# What a sanitizer build writes when it finds something ("Sanitizer" alone covers every kind).
SANITIZER_REPORT = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:", "Sanitizer")
NOBODY = 65534  # the unprivileged uid (and gid) tests run the wrapper as
IS_ROOT = os.geteuid() == 0

# The one line the wrapper logs every time COMMAND ends: how, after how long, what happens next.
END = re.compile(r"^restart-wrapper: (?P<command>\S+) (?:exited with status (?P<status>\d+)|"
                 r"was killed by signal (?P<signal>\d+)(?: \((?P<name>[A-Z0-9]+)\))?) "
                 r"after (?P<seconds>\d+\.\d)s; (?P<next>.+)$")


def ends(stderr: str) -> list[re.Match]:
    """Every end-of-COMMAND line in a wrapper's stderr, in order."""
    return [m for m in map(END.match, stderr.splitlines()) if m]


@contextlib.contextmanager
def runnable_by_others(binary: Path):
    """A copy of `binary` in a fresh 0755 directory, for running it as another uid.

    The checkout may sit under a private 0700 directory (a clone in /root/x), where any
    other uid gets EACCES on build/. The ASan build needs nothing else from the checkout:
    its runtime libraries are the system's.
    """
    directory = Path(tempfile.mkdtemp(prefix="restart-wrapper-runnable-"))
    try:
        directory.chmod(0o755)
        copy = directory / binary.name
        shutil.copyfile(binary, copy)
        copy.chmod(0o755)
        yield copy
    finally:
        shutil.rmtree(directory)


class Wrapper:
    """One `restart-wrapper run` process supervising a child.py program."""

    def __init__(self, binary: Path, tmp: Path, mode: str = "sleep", *extra: str, options=(), restart_file=None, prefix=(),
                 env=None):
        self.binary = binary
        self.log = tmp / "child.log"
        self.restart_file = restart_file or tmp / "restart"
        self.stderr_path = tmp / "wrapper.stderr"
        argv = [*prefix, str(binary), "run", f"--restart-file={self.restart_file}", *options, "--",
                *CHILD, mode, str(self.log), *extra]
        self.stderr_file = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                        env={**ENV, **(env or {})})
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
        return without_emulator_line(self.stderr_path.read_text(), self.binary)

    def ends(self) -> list[re.Match]:
        return ends(self.stderr())

    def wait_ends(self, n: int, timeout: float = 10.0) -> list[re.Match]:
        """The first n end-of-COMMAND lines, once there are that many."""
        return wait_until(lambda: len(self.ends()) >= n and self.ends()[:n], timeout, what=f"{n} ends")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def __enter__(self) -> "Wrapper":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.kill()  # a failed test: its processes must not outlive it, whatever state they are in
        self.stop()

    def kill(self) -> None:
        """SIGKILL the wrapper and every process group it started (each child leads its own)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
        for pid, _ in self.starts():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stderr_file.close()
            assert "runtime error" not in self.stderr() and "AddressSanitizer" not in self.stderr(), self.stderr()


def cpu_ticks(pid: int) -> int:
    """User + system clock ticks the process has used (its children not included)."""
    return sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])


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


def tool_variants(tool: str) -> list[str]:
    """Each build as `restart-wrapper TOOL`, and each release build also through a link named TOOL."""
    return [*BUILDS, *(f"{build}-as-{tool}" for build in RELEASES)]


def tool_argv(multicall: dict[str, Path], variant: str, tool: str) -> list[str]:
    """How to run TOOL (tar, rm, test) of one build in `multicall`: "static", "asan" or "arm64" is
    `restart-wrapper TOOL`; "static-as-TOOL" is the link named TOOL (argv[0] picks the job)."""
    build, _, by_name = variant.partition("-as-")
    directory = multicall[build]
    return [str(directory / tool)] if by_name else [str(directory / "restart-wrapper"), tool]

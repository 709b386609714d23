"""The other architectures' builds (arm64 here) run the whole suite under qemu-user; these are the
proofs, for what qemu-user cannot carry out, that do not rest on the emulator doing it.

- How the emulated builds run: binfmt_misc with Debian's qemu entry, flags P and F (emulation.py).
- PR_SET_CHILD_SUBREAPER: qemu answers EINVAL. The emulated build asks for it exactly as the native
  one does (qemu's -strace log shows the call), and reaps as PID 1, where no prctl is needed
  (test_signals.py, test_restart.py).
- The ignored signals and the mask a program inherits: qemu handles every signal itself and execs
  with its own mask. The emulated build changes no disposition and restores the mask it saved at
  start right before execve (the -strace log).
- openat2: qemu 7.2 does not know syscall 437 (ENOSYS). The emulated build tries it and falls back
  (the -strace log), and 437 is openat2 in the architecture's ABI (its musl headers).
- Real-time signals: qemu renumbers them. The architecture numbers every signal as this one does
  (its musl headers, checked at compile time), and the wrapper handles signals by number.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from . import archives as A
from . import emulation
from .archives import Dir, File
from .harness import BUILDS, EMULATOR_SUBREAPER_LINE, ENV, FOREIGN, architecture_of, runnable

TRIPLE = {"amd64": "x86_64", "arm64": "aarch64"}

pytestmark = pytest.mark.skipif(not FOREIGN, reason="no other architecture's build to emulate")


@pytest.fixture(params=FOREIGN)
def emulated(request) -> str:
    """The architecture of each emulated build, ready to run."""
    runnable(request.param)
    return request.param


def traced(arch: str, tmp_path: Path, *args: str, **kwargs) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the build under `qemu-ARCH-static -strace` (the system calls it makes, as qemu sees them
    before carrying them out); returns the result and the log's lines."""
    log = tmp_path / "strace.log"
    qemu = shutil.which(f"{emulation.QEMU[arch]}-static")
    assert qemu, f"{emulation.QEMU[arch]}-static is missing: `make test` installs qemu-user-static"
    result = subprocess.run([qemu, "-strace", "-D", str(log), str(BUILDS[arch]), *args], capture_output=True,
                            env=ENV, timeout=30, **kwargs)
    return result, log.read_text().splitlines()


def compiles(arch: str, tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """Compile C `source` with the architecture's musl cross compiler (the one its build used)."""
    compiler = shutil.which(f"{TRIPLE[arch]}-linux-musl-gcc")
    assert compiler, f"{TRIPLE[arch]}-linux-musl-gcc is missing: `make packages` installs it"
    path = tmp_path / "check.c"
    path.write_text(source)
    return subprocess.run([compiler, "-std=c11", "-D_GNU_SOURCE", "-fsyntax-only", str(path)], capture_output=True,
                          text=True, timeout=60)


def test_the_emulated_build_runs_through_binfmt_with_argv0_kept(emulated, tmp_path):
    entry = emulation.entry(emulated)
    assert entry.get("state") == "enabled" and {"P", "F"} <= set(entry["flags"]), entry
    binary = BUILDS[emulated]
    assert architecture_of(binary) == emulated and emulation.emulated(emulated)
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True, env=ENV, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("restart-wrapper "), version
    # P: argv[0] reaches the program as it was, so a link named `test` is the test tool.
    (tmp_path / "test").symlink_to(binary)
    assert [subprocess.run([str(tmp_path / "test"), "-d", str(p)], env=ENV, timeout=30).returncode
            for p in (tmp_path, tmp_path / "test")] == [0, 1]


def test_the_emulated_build_asks_to_be_a_subreaper(emulated, tmp_path):
    """prctl(PR_SET_CHILD_SUBREAPER, 1), which qemu refuses; the line the wrapper says then is the
    one the suite leaves out of what it compares (harness.without_emulator_line). When qemu learns
    the call, this fails: then the line, and the subreaper tests' marks, can go."""
    result, log = traced(emulated, tmp_path, "run", "--exit-policy=restart", f"--restart-file={tmp_path / 'r'}",
                         "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    calls = re.findall(r"\d+ prctl\(.*", "\n".join(log))
    assert len(calls) == 1 and re.match(r"\d+ prctl\(36,1,0,0,0,", calls[0]), calls  # 36: PR_SET_CHILD_SUBREAPER
    assert calls[0].endswith("= -1 errno=22 (Invalid argument)"), calls
    assert result.stderr.decode().startswith(EMULATOR_SUBREAPER_LINE), result.stderr


def test_the_emulated_build_passes_on_the_signals_it_inherited(emulated, tmp_path):
    """What a program the wrapper starts inherits: the dispositions the wrapper got (it never calls
    sigaction, so a signal ignored at its start stays ignored, as execve keeps SIG_IGN) and the mask
    it got (saved when it blocks every signal at start, and set back by the child it forks last
    thing before execve; qemu's log shows the masks' addresses: the saved one is one variable)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        result, log = traced(emulated, tmp_path, "run", "--exit-policy=restart", f"--restart-file={tmp_path / 'r'}",
                             "--", "/bin/true")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    assert result.returncode == 0, result.stderr
    # Searched for anywhere: the processes' lines can interleave (a call's result is written after it returns).
    text = "\n".join(log)
    # \s*: another process's line can land inside this one, between "(" and its arguments.
    masks = list(re.finditer(r"(\d+) rt_sigprocmask\(\s*SIG_SETMASK,(0x[0-9a-f]+),(0x[0-9a-f]+|NULL)\)", text))
    wrapper_pid, _, saved = masks[0].groups()  # the first: block every signal, save the inherited mask
    assert saved != "NULL"
    execs = list(re.finditer(r"(\d+) execve\(\"/bin/true\"", text))
    assert len(execs) == 1, text
    child = execs[0].group(1)
    assert child != wrapper_pid
    before_exec = [m for m in masks if m.group(1) == child and m.start() < execs[0].start()]
    assert before_exec and before_exec[-1].group(2) == saved, text  # the child's last mask is the saved one
    assert "rt_sigaction(" not in text  # no disposition changed, in the wrapper or its child


def test_the_emulated_build_tries_openat2_then_falls_back(emulated, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    archive = A.python([Dir("d"), File("d/f", b"synced\n")], "ustar")
    result, log = traced(emulated, tmp_path, "tar", "-C", str(target), "-x", "-f", "-", input=archive)
    assert result.returncode == 0, result.stderr
    assert (target / "d" / "f").read_bytes() == b"synced\n"
    assert any(line.endswith("Unknown syscall 437") for line in log), log  # qemu 7.2: ENOSYS, so the fallback
    # 437 is openat2 in this architecture's ABI, and struct open_how is three 64-bit fields everywhere.
    check = compiles(emulated, tmp_path, "#include <sys/syscall.h>\n#include <stdint.h>\n"
                                         "_Static_assert(SYS_openat2 == 437, \"openat2\");\n")
    assert check.returncode == 0, check.stderr


def signal_asserts(numbers: dict[str, int]) -> str:
    lines = ["#include <signal.h>"]
    lines += [f'_Static_assert({name} == {number}, "{name}");' for name, number in numbers.items()]
    return "\n".join(lines) + "\n"


def test_the_arm64_abi_numbers_signals_like_amd64(emulated, tmp_path):
    """Every signal name and _NSIG (the real-time range ends at _NSIG - 1) have this machine's
    numbers in the architecture's C library headers: what the wrapper forwards, names and reports
    by number is the same signal there. Checked by the compiler, not by running anything."""
    numbers = {s.name: int(s) for s in signal.Signals if not s.name.startswith("SIGRT")}
    numbers["_NSIG"] = signal.NSIG
    assert len(numbers) >= 32 and numbers["SIGSYS"] == 31
    check = compiles(emulated, tmp_path, signal_asserts(numbers))
    assert check.returncode == 0, check.stderr
    # Control: the check fails when a number is wrong.
    wrong = compiles(emulated, tmp_path, signal_asserts({"SIGUSR1": 30}))
    assert wrong.returncode != 0 and "SIGUSR1" in wrong.stderr

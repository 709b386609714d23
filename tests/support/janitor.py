"""Cleanup that survives a killed test run, for harnesses that run daemons as root.

A harness owns three things the kernel does not clean up, each named after the test run's PID so
that a later run can tell whose they are: one directory (under the temporary directory), one
cgroup (the same name in every hierarchy) and one bridge. It runs its daemons with a command that
puts them in their own mount and PID namespaces (`unshare --mount --pid --fork --kill-child`):
when the namespace's first process dies, the kernel kills every process in it (containers and
shims included) and its mounts go with it.

The janitor (this module's main) is what starts that command. It runs in a session of its own
and keeps its stdin open to the test run: when stdin closes -- the harness's stop(), or the run
died, even by SIGKILL -- it kills the command, which ends the namespace, then removes the
cgroup, the bridge and the directory. If the janitor itself is killed, the command dies with it
(PR_SET_PDEATHSIG). clean_stale() removes what a run whose PID is gone left behind anyway (a
janitor killed too, or a machine that lost power).

tests/node/node.py (a kubelet and containerd) and tests/support/docker.py (a Docker Engine) run
their daemons under it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT
from .processes import die_with_parent
from .waiting import wait_until

CGROUP_FS = Path("/sys/fs/cgroup")
FAMILY = r"-[a-z][0-9a-z]*"  # what follows an owned bridge's name in its family's


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1: one per controller set, and a hybrid's unified one;
    v2: the root itself)."""
    if (CGROUP_FS / "cgroup.procs").exists():
        return [CGROUP_FS]
    return [p for p in sorted(CGROUP_FS.iterdir()) if (p / "cgroup.procs").exists()]


def cgroup_paths(name: str) -> list[Path]:
    """Where the cgroup `name` (relative to each hierarchy's root) is, in the hierarchies that have it."""
    return [h / name for h in hierarchies() if (h / name).is_dir()]


def remove_cgroup_tree(path: Path, timeout: float = 30) -> None:
    """rmdir bottom-up; processes still dying (a namespace being torn down) get a moment, then SIGKILL."""
    def removed() -> bool:
        for dirpath, dirnames, _ in os.walk(path, topdown=False):
            for name in dirnames:
                try:
                    os.rmdir(os.path.join(dirpath, name))
                except OSError:
                    pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            for procs in path.rglob("cgroup.procs"):
                try:
                    pids = procs.read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
            return False
        return True

    wait_until(removed, timeout, interval=0.2, what=f"cgroup {path} to be removed")


def bridges() -> list[str]:
    out = subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True, text=True).stdout
    return [link["ifname"] for link in json.loads(out or "[]")]


def add_bridge(name: str) -> None:
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True, capture_output=True)


def delete_bridge(name: str) -> None:
    if name in bridges():
        subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True)


def remove_directory(directory: Path, timeout: float = 30) -> None:
    """rmtree, again while a dying namespace still holds something (a mount being released)."""
    def removed() -> bool:
        shutil.rmtree(directory, ignore_errors=True)
        return not directory.exists()

    wait_until(removed, timeout, interval=0.2, what=f"{directory} to be removed")


@dataclass(frozen=True)
class Owned:
    """What one harness instance owns. An empty cgroup or bridge name: none. The bridge stands for
    its family too: bridges named BRIDGE-SUFFIX (a letter first), which a daemon creates for
    networks the harness asks for (DockerDaemon.network_bridge)."""
    directory: Path
    cgroup: str = ""
    bridge: str = ""

    def argv(self) -> list[str]:
        return [str(self.directory), self.cgroup, self.bridge]


def clean(owned: Owned, directory: bool = True) -> None:
    """Remove what a stopped run leaves: its cgroups, its bridge, and (unless told not to) its directory."""
    if owned.cgroup:
        for path in cgroup_paths(owned.cgroup):
            remove_cgroup_tree(path)
    if owned.bridge:
        for name in bridges():
            if name == owned.bridge or re.fullmatch(re.escape(owned.bridge) + FAMILY, name):
                delete_bridge(name)
    if directory and owned.directory.exists():
        remove_directory(owned.directory)


def run_directory(prefix: str) -> Path:
    """A new temporary directory named PREFIX + this run's PID + "-": what `clean_stale(prefix)`
    removes once the run is gone, however it ended (a killed run's servers die with it,
    PR_SET_PDEATHSIG, but their directories stay). Cleans up after dead runs of `prefix` first."""
    clean_stale(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def clean_stale(directory_prefix: str, cgroup_prefix: str = "", bridge_prefix: str = "") -> list[str]:
    """Remove what killed test runs left: directories (in the temporary directory) named
    `directory_prefix` PID `-`..., cgroups named `cgroup_prefix` PID and bridges named
    `bridge_prefix` PID (each optionally followed by `-` or `x` and an instance number), whose PID
    no longer runs. Returns what it removed."""
    removed = []

    def stale(prefix: str, name: str) -> bool:
        match = re.fullmatch(re.escape(prefix) + r"(\d+)(?:[-x]\d+)?(?:" + FAMILY + ")?", name)
        return bool(match) and not alive(int(match.group(1)))

    if cgroup_prefix:
        for hierarchy in hierarchies():
            for path in hierarchy.glob(cgroup_prefix + "*"):
                if path.is_dir() and stale(cgroup_prefix, path.name):
                    remove_cgroup_tree(path)
                    removed.append(str(path))
    if bridge_prefix:
        for name in bridges():
            if stale(bridge_prefix, name):
                delete_bridge(name)
                removed.append(name)
    for path in Path(tempfile.gettempdir()).glob(directory_prefix + "*"):
        match = re.match(re.escape(directory_prefix) + r"(\d+)-", path.name)
        if match and not alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


class Janitor:
    """Runs `command` under a janitor that cleans up `owned` when stop() is called or the test run
    dies. The janitor's own output (and the command's, unless it redirects it) goes to `log`."""

    def __init__(self, owned: Owned, command: list[str], log: Path, env: dict[str, str] | None = None):
        self.owned = owned
        self.command = command
        self.log_path = log
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        self._log = open(self.log_path, "ab")
        # A session of its own: a ^C to the test run's process group does not reach it, and it
        # outlives the run by the seconds the clean-up takes.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.janitor", *self.owned.argv(), "--", *self.command],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True)
        return self.process

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 120) -> None:
        """End the command and clean up; returns when everything is gone."""
        if self.process is not None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._log.close()
            self.process = None
        clean(self.owned)  # what a janitor that failed left


def _main(argv: list[str]) -> int:
    """DIR CGROUP BRIDGE -- COMMAND...: run COMMAND until stdin closes, then kill it and clean up.
    If COMMAND dies first, its cgroup and bridge go at once, and the directory (with the logs)
    when stdin closes."""
    directory, cgroup, bridge, separator, *command = argv
    assert separator == "--", argv
    owned = Owned(Path(directory), cgroup, bridge)
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    closed = threading.Event()

    def wait_for_eof():
        sys.stdin.buffer.read()
        closed.set()
        # unshare --kill-child: the namespace's first process dies, and with it everything in it.
        child.kill()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    status = child.wait()
    started = time.monotonic()
    clean(owned, directory=False)
    closed.wait()
    clean(owned)
    print(f"janitor: {' '.join(command[:1])} exited with {status}; cleaned up in "
          f"{time.monotonic() - started:.1f}s", flush=True)
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C is the test run's to handle; stdin tells us
    sys.exit(_main(sys.argv[1:]))

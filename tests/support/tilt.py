"""`tilt up` as a process the tests and benchmarks drive: the real Tilt, on a copy of one of the
Tiltfiles in examples/, against the test control plane (tests/node) or a kind cluster (tests/e2e).

Hermetic: Tilt gets a HOME of its own (its ~/.tilt-dev token and config, the XDG cache where it
keeps its API server's certificates, and anything the build commands write under ~) in a
temporary directory, with TILT_*, XDG_*, KUBE* and DOCKER_* from the caller's environment left
out; analytics and the update check are off, its web server listens on a free loopback port.
`stop()` interrupts it as ^C does, kills whatever its process group still holds, and removes the
directory. If the test run is killed, Tilt dies with it (PR_SET_PDEATHSIG), and the next run
removes the directory, which is named after the dead run's PID.

The example is copied (examples/<name> and examples/app, which its build compiles) so that the
test edits files without touching the checkout; the Tiltfile Tilt runs is byte for byte the one
users read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml

from .binaries import find_binary
from .janitor import alive
from .ports import free_port
from .processes import die_with_parent
from .waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "restart-process-tilt-"  # + the test run's PID: what a killed run left is found by it


def clean_stale() -> None:
    """Remove the directories of Tilts whose test run is gone (killed before stop() could)."""
    for path in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        match = re.match(PREFIX + r"(\d+)-", path.name)
        if match and not alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


class TiltExited(Exception):
    """tilt up exited while something was awaited (not an AssertionError: waits ignore those)."""


def go_environment() -> dict[str, str]:
    """The caller's Go caches: a build under Tilt's temporary HOME would otherwise start cold and
    compile the standard library again (a minute on two busy cores)."""
    go = shutil.which("go")
    if go is None:
        return {}
    values = json.loads(subprocess.run([go, "env", "-json", "GOCACHE", "GOMODCACHE", "GOPATH"],
                                       capture_output=True, text=True, check=True).stdout)
    return {k: v for k, v in values.items() if v}


def crane_example_settings(registry: str, base_image: str, crane: Path, kubeconfig: Path) -> dict[str, str]:
    """examples/tilt-crane's settings (its Tiltfile's header documents them) for the test node:
    the plain-HTTP loopback registry, the base image (`scratch`: none), the test control plane's
    context allowed, crane on the PATH for build.sh."""
    context = yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
    return {"REGISTRY": registry, "REGISTRY_INSECURE": "1", "BASE_IMAGE": base_image, "ALLOW_K8S_CONTEXT": context,
            "PATH": f"{Path(crane).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


class Tilt:
    """`tilt up --stream` on examples/<example>/Tiltfile (copied), deploying to `namespace` through
    `kubeconfig`; `env` is the Tiltfile's settings. Always `stop()` (or use `with`)."""

    def __init__(self, example: str, kubeconfig: Path, namespace: str, env: dict[str, str]):
        self.binary = find_binary("tilt")
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        clean_stale()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        try:
            for name in (example, "app"):
                shutil.copytree(ROOT / "examples" / name, self.dir / "examples" / name,
                                ignore=shutil.ignore_patterns("build"))
            self.example = self.dir / "examples" / example
            self.tiltfile = self.example / "Tiltfile"
            # Tilt deploys objects without a namespace to the kube context's namespace.
            config = yaml.safe_load(Path(kubeconfig).read_text())
            for context in config["contexts"]:
                context["context"]["namespace"] = namespace
            self.kubeconfig = self.dir / "kubeconfig"
            self.kubeconfig.write_text(yaml.safe_dump(config))
            home = self.dir / "home"
            home.mkdir()
            inherited = {k: v for k, v in os.environ.items()
                         if not k.startswith(("TILT_", "XDG_", "KUBE", "DOCKER_"))}
            self.env = {
                **inherited, **go_environment(), **env,
                "HOME": str(home), "TILT_DEV_DIR": str(home / ".tilt-dev"),
                "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_STATE_HOME": str(home / ".local" / "state"),
                "XDG_RUNTIME_DIR": str(home / "run"),
                "KUBECONFIG": str(self.kubeconfig), "TILT_DISABLE_ANALYTICS": "1",
            }
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Tilt":
        self.started = time.monotonic()
        # A session of its own: stop() can then kill what Tilt started (the custom_build's
        # build.sh, go, crane) if Tilt itself leaves any of it behind.
        self.process = subprocess.Popen(
            [str(self.binary), "up", "--stream", "--web-mode=prod", "--host=127.0.0.1", f"--port={self.port}",
             f"--file={self.tiltfile}"],
            cwd=self.example, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        """Keep every line of Tilt's output with the wall-clock time it arrived (the benchmark
        compares it with containerd's log timestamps)."""
        for raw in self.process.stdout:
            arrived = time.time()
            with self._lock:
                self._lines.append((arrived, raw.decode(errors="replace").rstrip("\n")))

    def exited(self) -> bool:
        """Whether Tilt has exited, without reaping it: its PID, the process group's ID, stays
        taken until stop() has killed the group, so the kill can only reach what Tilt started."""
        return os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def stop(self) -> None:
        if self.process is not None:
            if not self.exited():
                self.process.send_signal(signal.SIGINT)  # ^C: Tilt stops its controllers and exits
                try:
                    wait_until(self.exited, 30, 0.05, "tilt up to exit on SIGINT")
                except AssertionError:
                    pass
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # Tilt, if stuck, and anything it left
            except ProcessLookupError:
                pass
            self.process.wait()
            self._reader.join(timeout=10)  # EOF once every writer of the pipe is gone
            self.process.stdout.close()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Tilt":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what it says ----------------------------------------------------------------------

    def lines(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self._lines)

    def output(self, tail: int = 0) -> str:
        text = "\n".join(line for _, line in self.lines())
        return text[-tail:] if tail else text

    def wait(self, condition, what: str, timeout: float = 300, interval: float = 0.05, ignoring=()):
        """wait_until, failing at once if Tilt exits, and with Tilt's output on failure."""
        def check():
            if self.exited():
                raise TiltExited(f"tilt up exited while waiting for {what}")
            return condition()

        try:
            return wait_until(check, timeout, interval, what, ignoring=ignoring)
        except (AssertionError, TiltExited) as error:
            raise AssertionError(f"{error}\n--- tilt up output (tail):\n{self.output(tail=6000)}") from None

    def get(self, kind: str, name: str) -> dict:
        """`tilt get KIND NAME -o json` from this Tilt's API server (e.g. uiresource status)."""
        result = subprocess.run([str(self.binary), "get", kind, name, f"--port={self.port}", "--host=127.0.0.1",
                                 "-o", "json"], env=self.env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"tilt get {kind} {name}: {result.stderr.strip()}")
        return json.loads(result.stdout)

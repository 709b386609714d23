"""A private Docker Engine for tests: Debian's docker.io (dockerd 20.10) started by the test run,
for the test run, and gone when it ends -- even when the run is killed.

Nothing of it is shared with a Docker daemon that may already run on the machine (its
/var/run/docker.sock is left alone, and never used): the daemon gets its own --data-root,
--exec-root, --pidfile and unix socket under one temporary directory, a configuration file of its
own (never /etc/docker/daemon.json), its own bridge (rpdPID, created here and passed as
--bridge), its own cgroup parent (restart-process-docker-PID) and its own containerd, which
dockerd starts under its exec-root. It runs in its own mount and PID namespaces (`unshare --mount
--pid --fork --kill-child`), with private bind mounts over /run and /etc/docker:

- /run, because dockerd 20.10 uses a system containerd when /run/containerd/containerd.sock
  exists instead of starting its own, and because containerd 1.6 puts its shims' sockets in
  /run/containerd/s whatever its configuration says;
- /etc/docker, because dockerd reads certs.d and plugins there and writes key.json there
  (deprecated-key-path moves that one too);
- and, on a host with no /lib/modules, an overlay over /usr/lib that holds an empty one: kind
  mounts /lib/modules into its nodes, and dockerd would create it on the host otherwise.

Networking: --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false. A Docker
daemon with iptables on creates and rewrites chains that every daemon on the host shares (DOCKER,
DOCKER-USER, DOCKER-ISOLATION-STAGE-*, the FORWARD policy, the nat table's MASQUERADE): starting or
stopping ours would add and flush rules under a system daemon's feet, and a killed run would leave
rules behind that the next daemon trips over. net.ipv4.ip_forward is a host-wide switch, so it is
left as it is too. So containers on the bridge reach the host (published ports, through
docker-proxy on loopback) and each other, but nothing beyond: a `docker build` whose RUN steps
download packages needs `--network host` (see tests/docker/).

Clients: the CLI is Debian's /usr/bin/docker 20.10, the one built for this daemon. An unrelated
CLI may come first on the PATH (here /usr/local/bin/docker, Docker 28): it negotiates the API down
to 1.41 and runs containers, but builds only with the legacy builder, since BuildKit in a 28 CLI
needs the buildx plugin; Debian's has BuildKit built in. env() is what any client needs -- the
tests' docker calls, and later kind and Tilt: DOCKER_HOST pointing at this daemon, a DOCKER_CONFIG
of its own (nothing read from or written to ~/.docker), and a PATH whose first `docker` is
Debian's (kind runs `docker` from the PATH; Tilt talks to DOCKER_HOST itself). BuildKit is the
daemon's default builder (features.buildkit), so clients that ask the daemon use it too.

The janitor (tests/support/janitor.py) starts the namespace and cleans up after it; clean_stale()
removes what a killed run left (run it before start(), as the fixtures do).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .janitor import Janitor, Owned, add_bridge, clean, clean_stale as _clean_stale
from .paths import ROOT
from .waiting import wait_until

PREFIX = "restart-process-docker-"  # directory and cgroup parent, + the test run's PID
BRIDGE_PREFIX = "rpd"                # bridge, + the PID (IFNAMSIZ: at most 15 characters)
SYSTEM_SOCKET = Path("/var/run/docker.sock")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Debian's docker.io: the daemon and the CLI built for it.
DOCKERD = "/usr/sbin/dockerd"
DOCKER_CLI = "/usr/bin/docker"
REQUIRED = ("unshare", "ip", "containerd", "containerd-shim-runc-v2", "runc")

# PID 1 of the namespaces: private /run and /etc/docker (see the module's docstring), then dockerd.
# bash stays PID 1, so it reaps what is re-parented to it (the shims' daemonizing parents).
INIT = r"""
set -euo pipefail
d=$1; shift
mount --make-rshared /
mount --bind "$d/run" /run
if [ -d /etc/docker ]; then mount --bind "$d/etc-docker" /etc/docker; fi
# kind mounts the host's /lib/modules into its nodes, and dockerd creates a missing bind source on
# the host; a kernel without modules has none. Then /usr/lib gets an overlay whose upper layer is
# ours, and the empty /lib/modules lives there, in this namespace only.
if [ ! -e /lib/modules ]; then
  mkdir -p "$d/usr-lib/upper" "$d/usr-lib/work"
  mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$d/usr-lib/upper,workdir=$d/usr-lib/work" /usr/lib
  mkdir /usr/lib/modules
fi
"$@" >>"$d/dockerd.log" 2>&1 &
wait "$!" || status=$?
echo "docker-init: dockerd exited with ${status:-0}; ending the namespace" >&2
exit 1
"""

_instances = itertools.count()

# Seconds the steps of a session took (daemon start, bases, builds), printed at the end of the run.
TIMINGS: dict[str, float] = {}


def _identity(path: Path) -> tuple[int, int, int] | None:
    """(device, inode, mtime) of a file, or None when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


def why_not() -> str | None:
    """Why a private daemon cannot run here, or None."""
    if os.geteuid() != 0:
        return "a private Docker daemon needs root (namespaces, mounts, cgroups, a bridge); `sudo make test` runs it"
    missing = [p for p in (DOCKERD, DOCKER_CLI) if not os.access(p, os.X_OK)]
    missing += [t for t in REQUIRED if shutil.which(t, path=SYSTEM_PATH) is None]
    if missing:
        return (f"missing {', '.join(missing)}: Debian's docker.io (dockerd 20.10 and its CLI) and the runtime it "
                f"uses; `make test` installs them (make packages)")
    return None


def missing_capabilities() -> int:
    """The capabilities the kernel has that this process's bounding set lacks, as a bit mask (on
    some sandboxes every process lacks CAP_SYS_RESOURCE)."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    status = Path("/proc/self/status").read_text()
    bounding = int(next(line for line in status.splitlines() if line.startswith("CapBnd:")).split()[1], 16)
    return ((1 << (last + 1)) - 1) & ~bounding


def clean_stale() -> list[str]:
    """Remove what killed test runs left: directories, cgroup parents and bridges named after a
    PID that no longer runs."""
    return _clean_stale(PREFIX, PREFIX, BRIDGE_PREFIX)


class DockerDaemon:
    """`start()` runs a private dockerd and waits until it answers; always `stop()`.

    `env()` is the environment for its clients, `docker(...)` runs its CLI. The daemon's start
    time is `start_seconds`."""

    private = True

    def __init__(self):
        pid = os.getpid()
        n = next(_instances)
        suffix = f"-{n}" if n else ""
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}{suffix}-"))
        self.cgroup_parent = f"{PREFIX}{pid}{suffix}"
        self.bridge = f"{BRIDGE_PREFIX}{pid}" + (f"x{n}" if n else "")
        self.socket = self.dir / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.owned = Owned(self.dir, self.cgroup_parent, self.bridge)
        self.janitor: Janitor | None = None
        self.start_seconds: float | None = None
        # A Docker daemon of the machine's own: looked at, never used (tests check it is untouched).
        self.system_socket = _identity(SYSTEM_SOCKET)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> "DockerDaemon":
        started = time.monotonic()
        try:
            self._write_config()
            add_bridge(self.bridge)
            command = [
                "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
                "bash", "-c", INIT, "docker-init", str(self.dir),
                DOCKERD,
                f"--config-file={self.dir / 'daemon.json'}",
                f"--data-root={self.dir / 'data'}",
                f"--exec-root={self.dir / 'exec'}",
                f"--pidfile={self.dir / 'docker.pid'}",
                f"--host={self.host}",
                f"--bridge={self.bridge}",
                # Never touch the iptables chains and the host-wide switch other daemons share:
                # see the module's docstring.
                "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
                f"--cgroup-parent=/{self.cgroup_parent}",
            ]
            env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": str(self.dir / "home")}
            self.janitor = Janitor(self.owned, command, self.dir / "janitor.log", env=env)
            self.janitor.start()
            wait_until(self._answers, timeout, interval=0.1, what="the private dockerd to answer",
                       process=self.janitor.process)
        except BaseException as error:
            logs = self.logs()
            self.stop()
            if isinstance(error, AssertionError):
                raise RuntimeError(f"{error}:\n{logs}") from None
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.janitor is not None:
            self.janitor.stop()
            self.janitor = None
        clean(self.owned)

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        return self.docker("version", check=False).returncode == 0

    # --- configuration ---------------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.dir
        for sub in ("run", "etc-docker", "home", "client", "bin"):
            (d / sub).mkdir()
        config = {
            # key.json would go to /etc/docker otherwise (hidden by the private mount anyway).
            "deprecated-key-path": str(d / "key.json"),
            "storage-driver": "overlay2",
            "log-driver": "json-file",
            # BuildKit as the default builder: clients that ask the daemon (Tilt) use it too.
            "features": {"buildkit": True},
            "shutdown-timeout": 5,
        }
        if missing_capabilities():
            # Docker 20.10 gives a --privileged container (a kind node) every capability the kernel
            # knows, and runc cannot raise one that this process's bounding set lacks: such a daemon
            # runs containers through hack/runc-bounded.sh, which leaves those out of the spec.
            config["runtimes"] = {"runc-bounded": {"path": str(ROOT / "hack" / "runc-bounded.sh")}}
            config["default-runtime"] = "runc-bounded"
        (d / "daemon.json").write_text(json.dumps(config, indent=2))
        (d / "client" / "config.json").write_text("{}\n")
        # kind and scripts run `docker` from the PATH: this one is first.
        (d / "bin" / "docker").symlink_to(DOCKER_CLI)

    # --- clients ---------------------------------------------------------------------------

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) for a client of this daemon: DOCKER_HOST
        is ours, DOCKER_* that would point elsewhere are gone, `docker` on the PATH is Debian's."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith("DOCKER_") and k not in ("BUILDKIT_HOST",)}
        env.update({
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.dir / "client"),
            "DOCKER_BUILDKIT": "1",
            "PATH": f"{self.dir / 'bin'}:{env.get('PATH', SYSTEM_PATH)}",
        })
        return env

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Debian's docker CLI against this daemon (run_docker)."""
        return run_docker(DOCKER_CLI, self.env(), *args, **kwargs)

    def build_options(self) -> list[str]:
        """What `docker build` needs on top of the README's command with this daemon:
        `--network host`, as it has no NAT and the RUN steps download packages; and the CA build
        secret (ca_secret_option)."""
        return ["--network", "host", *ca_secret_option()]

    def network_bridge(self, suffix: str) -> str:
        """A bridge name for a network this daemon creates (`docker network create -o
        com.docker.network.bridge.name=...`): of the family the janitor removes with the daemon's
        own bridge, so a killed run leaves it behind no more than that one."""
        name = f"{self.bridge}-{suffix}"
        assert len(name) <= 15 and suffix[:1].isalpha(), name  # IFNAMSIZ
        return name

    # --- what it runs ----------------------------------------------------------------------

    def pid(self) -> int | None:
        """dockerd's PID as the host sees it (the pidfile holds the namespace's)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0] == DOCKERD.encode() and f"--data-root={self.dir / 'data'}".encode() in argv:
                return int(entry.name)
        return None

    def log_of(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {name}.log\n{self.log_of(name)[-tail:]}" for name in ("janitor", "dockerd"))


class ExistingDockerDaemon:
    """A Docker daemon that already runs -- a user's, with a registry in reach -- named by
    RESTART_PROCESS_DOCKER_HOST (e.g. unix:///var/run/docker.sock): used as it is, never
    started, stopped or cleaned up, and never given base images (its builds pull them)."""

    private = False
    start_seconds = 0.0

    def __init__(self, host: str):
        self.host = host

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in (os.environ if base is None else base).items() if k != "DOCKER_CONTEXT"}
        env["DOCKER_HOST"] = self.host
        return env

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """The docker CLI on the PATH against that daemon (run_docker)."""
        return run_docker("docker", self.env(), *args, **kwargs)

    def build_options(self) -> list[str]:
        return ca_secret_option()


def import_bases(daemon: DockerDaemon, *images: str) -> tuple[float, str]:
    """hack/build-base-images.sh --import into `daemon`: the Dockerfile's bases (or `images`),
    built from the Debian archive once and cached. Returns the seconds it took and its log."""
    started = time.monotonic()
    result = subprocess.run(["bash", str(ROOT / "hack" / "build-base-images.sh"), "--import", *images],
                            env=daemon.env(), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"hack/build-base-images.sh --import failed:\n{result.stderr[-6000:]}")
    return time.monotonic() - started, result.stderr


def run_docker(cli: str, env: dict[str, str], *args: str, check: bool = True, timeout: float | None = 600,
               cwd: Path = ROOT, text: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """`cli ARGS` with `env`; output captured (as text unless told otherwise). With `check`, a
    failure raises with the command's output."""
    result = subprocess.run([cli, *args], env=env, cwd=cwd, capture_output=True, text=text, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        stderr = result.stderr if text else result.stderr.decode(errors="replace")
        raise RuntimeError(f"docker {' '.join(args)} exited with {result.returncode}:\n{stderr[-4000:]}")
    return result


def ca_secret_option() -> list[str]:
    """The host's CA bundle as the build secret the Dockerfile gives pip, for HTTPS through a
    TLS-intercepting proxy (tests/docker/conftest.py says why there is no cleaner way)."""
    ca = host_ca_bundle()
    return ["--secret", f"id=ca-certificates,src={ca}"] if ca is not None else []


def host_ca_bundle() -> Path | None:
    """The trust store this machine's own pip and Python use: what a build behind a
    TLS-intercepting proxy must trust too (the Dockerfile takes it as the optional secret
    ca-certificates)."""
    import ssl

    candidates = [os.environ.get(name) for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")]
    candidates += [ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


# --- the project's images ----------------------------------------------------------------------

VERSION = (ROOT / "VERSION").read_text().strip()
WRAPPER_IMAGE = f"restart-process/restart-wrapper:{VERSION}"  # the README's names
WEBHOOK_IMAGE = f"restart-process/webhook:{VERSION}"
SIZES: dict[str, int] = {}  # image -> bytes, printed at the end of the run


@dataclass
class Build:
    image: str
    seconds: float
    returncode: int
    output: str
    size: int | None = None


def build(daemon: DockerDaemon | ExistingDockerDaemon, target: str, image: str) -> Build:
    """`docker build --target TARGET -t IMAGE .`, as the README has it, plus the daemon's build_options()."""
    started = time.monotonic()
    result = daemon.docker("build", *daemon.build_options(), "--target", target, "-t", image, ".", check=False,
                           timeout=1800)
    built = Build(image, time.monotonic() - started, result.returncode, result.stdout + result.stderr)
    TIMINGS[f"docker build --target {target}"] = built.seconds
    if result.returncode == 0:
        built.size = int(daemon.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
        SIZES[image] = built.size
    return built


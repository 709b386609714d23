"""The private Docker Engine itself (tests/support/docker.py): it shares nothing with the host's
Docker, and a test run killed with SIGKILL leaves nothing of it behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import docker, janitor
from tests.support.paths import ROOT
from tests.support.waiting import wait_until


def _stat_start(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/PID/stat): with the PID, it names the process
    even if the PID is reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _processes() -> dict[int, dict]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            found[pid] = {
                "argv": (entry / "cmdline").read_bytes().split(b"\0"),
                "pidns": os.readlink(entry / "ns" / "pid"), "mntns": os.readlink(entry / "ns" / "mnt"),
                "start": _stat_start(pid),
            }
        except OSError:
            continue
    return found


def _in_cgroup(name: str) -> set[int]:
    pids = set()
    for path in janitor.cgroup_paths(name):
        for procs in path.rglob("cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def _mentions(process: dict, text: str) -> bool:
    return any(text.encode() in arg for arg in process["argv"])


def _iptables() -> str:
    """Every rule and chain of iptables and ip6tables (empty where the tools are missing)."""
    tools = [shutil.which(tool, path=docker.SYSTEM_PATH) for tool in ("iptables-save", "ip6tables-save")]
    return "\n".join(subprocess.run([tool], capture_output=True, text=True).stdout for tool in tools if tool)


def _docker_chains(rules: str) -> set[str]:
    return set(re.findall(r"^:(\S*DOCKER\S*)", rules, re.MULTILINE))


def _debian_containerd_commit() -> str:
    """What `docker info` reports as the commit of Debian's containerd (its package version)."""
    out = subprocess.run(["containerd", "--version"], capture_output=True, text=True,
                         env={"PATH": docker.SYSTEM_PATH}).stdout.split()
    return out[3] if len(out) > 3 else ""


def test_the_daemon_is_private(docker_daemon):
    """Its own root, socket, bridge and cgroup parent; a client of env() reaches it and only it."""
    info = json.loads(docker_daemon.docker("info", "--format", "{{json .}}").stdout)
    assert info["DockerRootDir"] == str(docker_daemon.dir / "data")
    assert info["CgroupDriver"] == "cgroupfs"
    env = docker_daemon.env({"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_CONTEXT": "elsewhere",
                             "DOCKER_TLS_VERIFY": "1"})
    assert env["DOCKER_HOST"] == docker_daemon.host != f"unix://{docker.SYSTEM_SOCKET}"
    assert "DOCKER_CONTEXT" not in env and "DOCKER_TLS_VERIFY" not in env
    # kind and scripts that run `docker` get Debian's, the CLI built for this daemon.
    found = subprocess.run(["sh", "-c", "command -v docker"], env=env, capture_output=True, text=True).stdout.strip()
    assert os.path.realpath(found) == docker.DOCKER_CLI
    versions = subprocess.run(["docker", "version", "--format", "{{.Client.Version}} {{.Server.Version}}"],
                              env=env, capture_output=True, text=True, check=True).stdout.split()
    assert versions[0] == versions[1], versions

    pid = docker_daemon.pid()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    for flag in (f"--bridge={docker_daemon.bridge}", f"--cgroup-parent=/{docker_daemon.cgroup_parent}",
                 "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                 f"--config-file={docker_daemon.dir / 'daemon.json'}", f"--exec-root={docker_daemon.dir / 'exec'}",
                 f"--pidfile={docker_daemon.dir / 'docker.pid'}"):
        assert flag in argv, flag
    # Its own containerd, under its exec-root, in its own namespaces: not the system's.
    processes = _processes()
    containerd = [p for p in processes.values() if p["argv"][0].endswith(b"containerd")
                  and _mentions(p, str(docker_daemon.dir / "exec" / "containerd"))]
    assert len(containerd) == 1 and containerd[0]["pidns"] == processes[pid]["pidns"]
    assert processes[pid]["pidns"] != os.readlink("/proc/self/ns/pid")
    assert processes[pid]["mntns"] != os.readlink("/proc/self/ns/mnt")
    # Its mounts are not the host's.
    assert str(docker_daemon.dir) not in Path("/proc/self/mountinfo").read_text()
    assert docker_daemon.bridge in janitor.bridges()

    # A system daemon's socket, and a system containerd's (dockerd 20.10 would use that one
    # rather than start its own), are not even in its view of the file system (its root, through
    # /proc, in its mount namespace); the system daemon's socket is as it was.
    view = Path(f"/proc/{pid}/root")
    for path in ("var/run/docker.sock", "run/docker.sock", "run/containerd/containerd.sock"):
        assert not (view / path).exists(), path
    assert docker._identity(docker.SYSTEM_SOCKET) == docker_daemon.system_socket
    assert info["ContainerdCommit"]["ID"] == _debian_containerd_commit(), info["ContainerdCommit"]


def test_a_killed_test_run_leaves_nothing_behind(tmp_path):
    """A run that started a daemon and containers (one with a published port: docker-proxy; one on
    a network of its own, as kind's nodes are) is killed with SIGKILL: no dockerd, containerd,
    shim, container or proxy process of it remains, and no bridge, veth, cgroup, mount or
    directory -- and no iptables rule ever existed."""
    iptables_before = _iptables()
    forwarding_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    stderr = open(tmp_path / "killed_run.err", "wb")
    run = subprocess.Popen([sys.executable, "-m", "tests.docker.killed_run"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=stderr)
    try:
        line = run.stdout.readline()
        if not line:
            run.wait(timeout=30)
            pytest.fail(f"the run exited with {run.returncode}: {(tmp_path / 'killed_run.err').read_text()}")
        owned = json.loads(line)
        directory = Path(owned["directory"])

        # What the run has, as the host sees it.
        processes = _processes()
        dockerd = processes[owned["dockerd"]]
        namespace = [pid for pid, p in processes.items() if p["pidns"] == dockerd["pidns"]]
        containers = _in_cgroup(owned["cgroup"])
        ours = {pid: processes[pid]["start"] for pid in set(namespace) | containers if pid in processes}
        names = {os.path.basename(processes[pid]["argv"][0]).decode() for pid in ours}
        assert {"dockerd", "containerd", "containerd-shim-runc-v2", "docker-proxy", "busybox"} <= names, names
        assert containers, "the container's processes are in the run's cgroup parent"
        veths = [link["ifname"] for link in json.loads(subprocess.run(
            ["ip", "-j", "link", "show", "master", owned["bridge"]], capture_output=True, text=True).stdout or "[]")]
        assert veths, "the container is on the run's bridge"
        assert owned["network_bridge"] in janitor.bridges(), "the network's bridge is of the run's family"
        inside = Path(f"/proc/{owned['dockerd']}/mountinfo").read_text()
        assert re.search(re.escape(str(directory)) + r"/data/overlay2/\S+/merged", inside), "the container's root"
        assert str(directory) not in Path("/proc/self/mountinfo").read_text(), "mounts stay in the namespace"

        run.kill()
        run.wait()
        # The janitor notices that its stdin closed, ends the namespace and cleans up.
        wait_until(lambda: not janitor.alive(owned["janitor"]), timeout=90, interval=0.2,
                   what="the killed run's janitor to finish")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        stderr.close()

    left = {pid for pid, start in ours.items() if _stat_start(pid) == start}
    assert not left, {pid: _processes().get(pid) for pid in left}
    now = _processes()
    assert not [p for p in now.values() if _mentions(p, str(directory))]
    assert not [p for p in now.values() if p["pidns"] == dockerd["pidns"] or p["mntns"] == dockerd["mntns"]]
    assert not janitor.cgroup_paths(owned["cgroup"])
    assert owned["bridge"] not in janitor.bridges() and owned["network_bridge"] not in janitor.bridges()
    for veth in veths:
        assert subprocess.run(["ip", "link", "show", veth], capture_output=True).returncode != 0, veth
    assert str(directory) not in Path("/proc/self/mountinfo").read_text()
    assert not directory.exists()
    iptables_after = _iptables()
    assert owned["bridge"] not in iptables_after and _docker_chains(iptables_after) == _docker_chains(iptables_before)
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forwarding_before


def test_clean_stale_removes_only_what_dead_runs_left():
    """Directory, cgroup parent and bridges (the daemon's and a network's of its family) named after
    a PID that is gone are removed; those of a PID that runs are kept."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    living = subprocess.Popen(["sleep", "60"])
    made = {}
    try:
        for pid in (dead.pid, living.pid):
            directory = Path(tempfile.mkdtemp(prefix=f"{docker.PREFIX}{pid}-"))
            (directory / "data").mkdir()
            cgroups = []
            for hierarchy in janitor.hierarchies():
                path = hierarchy / f"{docker.PREFIX}{pid}"
                path.mkdir()
                (path / "child").mkdir()
                cgroups.append(path)
            bridge = f"{docker.BRIDGE_PREFIX}{pid}"
            janitor.add_bridge(bridge)
            janitor.add_bridge(f"{bridge}-k")
            made[pid] = (directory, cgroups, bridge)

        removed = docker.clean_stale()

        directory, cgroups, bridge = made[dead.pid]
        assert not directory.exists() and str(directory) in removed
        assert not any(path.exists() for path in cgroups)
        assert bridge not in janitor.bridges() and bridge in removed
        assert f"{bridge}-k" not in janitor.bridges() and f"{bridge}-k" in removed
        directory, cgroups, bridge = made[living.pid]
        assert directory.exists() and all(path.exists() for path in cgroups) and bridge in janitor.bridges()
        assert f"{bridge}-k" in janitor.bridges()
    finally:
        living.kill()
        living.wait()
        for directory, cgroups, bridge in made.values():
            janitor.clean(janitor.Owned(directory, cgroups[0].name if cgroups else "", bridge))

"""Both targets of the Dockerfile, built by a real Docker Engine and run by it."""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import tarfile
import uuid
from dataclasses import dataclass

import httpx

from webhook.tls import generate_self_signed

from tests.support.binaries import find_binary
from tests.support.paths import BUILD, ROOT
from tests.support.ports import free_port
from tests.support.waiting import wait_until

# The chart's Deployment: runAsUser 10001, readOnlyRootFilesystem, capabilities dropped, no
# privilege escalation, an emptyDir of 16Mi at /tmp, the certificates at this directory.
TLS_DIR = "/var/run/restart-process/tls"
WRAPPER_BUDGET = 150_000  # bytes: the wrapper image is the one binary and three links


@dataclass(frozen=True)
class Member:
    """A layer's tar member: what a layout comparison looks at."""
    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    linkname: str
    content: bytes | None

    @classmethod
    def of(cls, tar: tarfile.TarFile, info: tarfile.TarInfo) -> "Member":
        # Docker's layers (Go's archive/tar) keep the file type bits in the mode; GNU tar does not.
        return cls(info.name.rstrip("/"), info.type, info.mode & 0o7777, info.uid, info.gid, info.linkname,
                   tar.extractfile(info).read() if info.isfile() else None)


def layer_members(daemon, image: str) -> list[Member]:
    """The members of an image's one layer, from `docker save` (what a registry would hold)."""
    saved = daemon.docker("save", image, text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        (layer,) = manifest[0]["Layers"]
        data = archive.extractfile(layer).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [Member.of(tar, info) for info in tar.getmembers()]


def test_the_wrapper_target_builds_and_is_small(wrapper_build, wrapper_image):
    assert wrapper_build.size < WRAPPER_BUDGET, f"{wrapper_build.size:,} bytes"


def test_the_wrapper_image_runs_version(docker_daemon, wrapper_image):
    version = (BUILD.parent / "VERSION").read_text().strip()
    result = docker_daemon.docker("run", "--rm", "--network", "none", wrapper_image)
    assert result.stdout == f"restart-wrapper {version}\n"


def test_the_wrapper_image_has_the_layout_of_the_wrappers_install(docker_daemon, wrapper_image):
    """/restart-wrapper and /bin/{tar,rm,test} as links to ../restart-wrapper: mounted as an image
    volume at /restart-process, the paths `restart-wrapper install` lays down."""
    config = json.loads(docker_daemon.docker("image", "inspect", wrapper_image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/restart-wrapper"]
    assert config["Cmd"] == ["version"]

    members = {m.name: m for m in layer_members(docker_daemon, wrapper_image)}
    assert sorted(members) == ["bin", "bin/rm", "bin/tar", "bin/test", "restart-wrapper"]
    binary = members["restart-wrapper"]
    assert (binary.type, binary.mode, binary.uid, binary.gid) == (tarfile.REGTYPE, 0o755, 0, 0)
    assert binary.content.startswith(b"\x7fELF")
    assert (members["bin"].type, members["bin"].mode, members["bin"].uid) == (tarfile.DIRTYPE, 0o755, 0)
    for name in ("tar", "rm", "test"):
        link = members[f"bin/{name}"]
        assert (link.type, link.linkname, link.uid, link.gid) == (tarfile.SYMTYPE, "../restart-wrapper", 0, 0), name


def test_hack_push_wrapper_image_builds_the_same_image_without_docker(docker_daemon, wrapper_image, registry,
                                                                     tmp_path):
    """`make wrapper-image` (crane, no Docker) and the Dockerfile's target: the same layer -- names,
    types, modes, owners, link targets and bytes -- and the same config. Given the binary the
    Docker build made, so that only the assembly is compared."""
    (binary,) = [m for m in layer_members(docker_daemon, wrapper_image) if m.name == "restart-wrapper"]
    (tmp_path / "restart-wrapper").write_bytes(binary.content)
    (tmp_path / "restart-wrapper").chmod(0o755)
    crane = str(find_binary("crane"))
    image = f"{registry.host}/restart-wrapper:from-crane"
    env = {**os.environ, "INSECURE": "1", "TEST_ASSET_CRANE": crane, "WRAPPER_BINARY": str(tmp_path / "restart-wrapper")}
    pushed = subprocess.run(["bash", str(ROOT / "hack" / "push-wrapper-image.sh"), image], env=env,
                            capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    exported = subprocess.run([crane, "export", "--insecure", image, "-"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        from_crane = sorted((Member.of(tar, info) for info in tar.getmembers()), key=lambda m: m.name)
    from_docker = sorted(layer_members(docker_daemon, wrapper_image), key=lambda m: m.name)
    assert from_crane == from_docker

    crane_config = json.loads(subprocess.run([crane, "config", "--insecure", image], capture_output=True,
                                             check=True).stdout)["config"]
    docker_config = json.loads(docker_daemon.docker("image", "inspect", wrapper_image).stdout)[0]["Config"]
    for key in ("User", "Entrypoint", "Cmd", "Env"):
        assert crane_config.get(key) == docker_config.get(key), key


def test_the_links_run_the_wrappers_tools_in_the_scratch_image(docker_daemon, wrapper_image):
    """No shell, no libc: /bin/test is the wrapper, called by that name."""
    run = ["run", "--rm", "--network", "none", "--entrypoint", "/bin/test", wrapper_image]
    assert docker_daemon.docker(*run, "-d", "/bin", check=False).returncode == 0
    assert docker_daemon.docker(*run, "-d", "/restart-wrapper", check=False).returncode == 1


def test_the_webhook_image_answers_readyz_read_only_as_uid_10001(docker_daemon, webhook_image, tmp_path):
    config = json.loads(docker_daemon.docker("image", "inspect", webhook_image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["restart-process", "serve"]

    certs = generate_self_signed(tmp_path / "tls", ["127.0.0.1"])
    for path in (certs.cert_file.parent, certs.cert_file, certs.key_file):
        os.chown(path, 10001, 10001)  # as a Secret volume with the pod's fsGroup would give them
    port = free_port()
    name = f"webhook-{uuid.uuid4().hex[:8]}"
    docker_daemon.docker(
        "run", "--detach", "--name", name,
        "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=16m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--volume", f"{certs.cert_file.parent}:{TLS_DIR}:ro",
        "--publish", f"127.0.0.1:{port}:8443",
        webhook_image,
        "--port=8443", f"--tls-cert-file={TLS_DIR}/tls.crt", f"--tls-key-file={TLS_DIR}/tls.key",
        "--no-registry-lookup")
    try:
        url = f"https://127.0.0.1:{port}/readyz"
        try:
            context = ssl.create_default_context(cafile=str(certs.ca_file))
            response = wait_until(lambda: httpx.get(url, verify=context, timeout=1), timeout=60,
                                  interval=0.2, what="the webhook container's /readyz", ignoring=(httpx.HTTPError,))
        except AssertionError as error:
            logs = docker_daemon.docker("logs", name, check=False)
            raise AssertionError(f"{error}\n{logs.stdout}{logs.stderr}") from None
        assert response.status_code == 200

        state = json.loads(docker_daemon.docker("inspect", name).stdout)[0]
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert state["State"]["Running"] is True
        status = docker_daemon.docker("exec", name, "cat", "/proc/1/status").stdout
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert uids == ["10001"] * 4, status
        cmdline = docker_daemon.docker("exec", name, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert cmdline[1:3] == ["/opt/restart-process/bin/restart-process", "serve"], cmdline
        logs = docker_daemon.docker("logs", name)
        assert "Read-only file system" not in logs.stdout + logs.stderr
    finally:
        docker_daemon.docker("rm", "--force", name, check=False)


def test_the_webhook_image_is_byte_compiled(docker_daemon, webhook_image):
    """Every module the server imports has its .pyc in the image: nothing is compiled at start on
    the read-only root filesystem."""
    program = (
        "import importlib.util, json, os, sys\n"
        "import webhook.cli, webhook.app, webhook.serve, uvicorn.main\n"
        "sources = [m.__file__ for m in list(sys.modules.values()) if (getattr(m, '__file__', None) or '').endswith('.py')]\n"
        "missing = [f for f in sources if not os.path.exists(importlib.util.cache_from_source(f))]\n"
        "print(json.dumps({'modules': len(sources), 'missing': missing}))\n")
    result = docker_daemon.docker("run", "--rm", "--network", "none", "--read-only", "--entrypoint", "python3",
                                  webhook_image, "-c", program)
    report = json.loads(result.stdout)
    assert report["modules"] > 200 and report["missing"] == [], report

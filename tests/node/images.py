"""OCI images for the node tests, built from files and pushed with crane -- no Docker engine.

Each image is one layer (a tar made here, with exact owners and modes) on crane's empty OCI
base, and a config edited in place (`crane edit config`). containerd pulls them from the local
registry over plain HTTP; the webhook reads their ENTRYPOINT/CMD from the same registry.

The wrapper image is not built here: hack/push-wrapper-image.sh builds it (the same script users
run, `make wrapper-image`), and `push_wrapper` calls it.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import struct
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.binaries import find_binary

ROOT = Path(__file__).resolve().parents[2]
APP_UID = 65532  # the example app's Dockerfile: USER 65532:65532, /app owned by it


def go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass
class Entry:
    """One tar entry: a file (from `source` or `data`), a directory, or a symlink."""

    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    source: Path | None = None
    data: bytes | None = None
    directory: bool = False
    link: str | None = None


@dataclass
class Image:
    repository: str
    entries: list[Entry]
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""
    stop_signal: str = ""  # STOPSIGNAL: how the runtime stops the container
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])


def layer(entries: list[Entry]) -> bytes:
    """A tar with each entry's parents first (root-owned, 0755, unless listed), fixed mtimes."""
    listed = {e.path.strip("/") for e in entries}
    ordered: list[Entry] = []
    seen: set[str] = set()
    for entry in entries:
        parts = entry.path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in seen and parent not in listed:
                seen.add(parent)
                ordered.append(Entry(parent, directory=True))
        seen.add(entry.path.strip("/"))
        ordered.append(entry)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in ordered:
            info = tarfile.TarInfo(entry.path.strip("/"))
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 1
            payload = None
            if entry.directory:
                info.type = tarfile.DIRTYPE
            elif entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
            else:
                payload = entry.data if entry.data is not None else entry.source.read_bytes()
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


class ImageBuilder:
    """Builds the test images into `registry` (host:port, plain HTTP on loopback)."""

    def __init__(self, registry: str, workdir: Path):
        self.registry = registry
        self.workdir = workdir
        self.crane = find_binary("crane")
        workdir.mkdir(parents=True, exist_ok=True)

    def _crane(self, *args: str, input: bytes | None = None) -> str:
        result = subprocess.run([str(self.crane), "--insecure", *args], input=input, capture_output=True)
        if result.returncode != 0:
            raise RuntimeError(f"crane {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def push(self, image: Image, tag: str = "test") -> str:
        ref = f"{self.registry}/{image.repository}:{tag}"
        tar = self.workdir / f"{image.repository.replace('/', '_')}.tar"
        tar.write_bytes(layer(image.entries))
        self._crane("append", "--oci-empty-base", "--new_layer", str(tar), "--new_tag", ref)
        config = json.loads(self._crane("config", ref))
        config.update({"architecture": go_arch(), "os": "linux"})
        config["config"] = {k: v for k, v in {
            "Entrypoint": image.entrypoint, "Cmd": image.cmd, "User": image.user, "Env": image.env,
            "StopSignal": image.stop_signal,
        }.items() if v}
        self._crane("edit", "config", ref, "--tag", ref, input=json.dumps(config).encode())
        return ref

    # --- the programs inside ---------------------------------------------------------------

    def example_app(self) -> Path:
        """examples/app, static (CGO_ENABLED=0), as its Dockerfile builds it."""
        out = self.workdir / "example"
        if not out.exists():
            env = {**os.environ, "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": go_arch(), "GOFLAGS": "-mod=mod"}
            subprocess.run([shutil.which("go") or "go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."],
                           cwd=ROOT / "examples" / "app", env=env, check=True, capture_output=True)
        return out

    def pause(self) -> Path:
        """tests/node/pause.c, static with musl: the sandbox image's one file."""
        out = self.workdir / "pause"
        if not out.exists():
            compiler = shutil.which("musl-gcc") or shutil.which("cc")
            subprocess.run([compiler, "-std=c11", "-D_GNU_SOURCE", "-Os", "-static", "-s", "-Wall", "-Werror", "-o", str(out),
                            str(Path(__file__).with_name("pause.c"))], check=True, capture_output=True)
        return out

    # --- the images ------------------------------------------------------------------------

    def push_pause(self) -> str:
        return self.push(Image("pause", [Entry("pause", source=self.pause())], entrypoint=["/pause"], user="65535:65535"))

    def push_app(self) -> str:
        """The example app on busybox-static: its Dockerfile's layout (/app owned by 65532, USER
        65532, ENTRYPOINT /app/bin/example), with busybox's sh, tar (kubectl cp) and coreutils,
        and a /tmp, as its Debian base has."""
        return self.push(Image("example-app", [
            *busybox_entries(),
            Entry("tmp", mode=0o1777, directory=True),
            Entry("app", uid=APP_UID, gid=APP_UID, directory=True),
            Entry("app/bin", uid=APP_UID, gid=APP_UID, directory=True),
            Entry("app/bin/example", uid=APP_UID, gid=APP_UID, source=self.example_app()),
            Entry("app/data", uid=APP_UID, gid=APP_UID, directory=True),
        ], entrypoint=["/app/bin/example"], user=f"{APP_UID}:{APP_UID}"))

    def push_scratch_app(self) -> str:
        """The example app alone, FROM-scratch style: no shell, no tar, no rm, no /tmp, and no Env in
        its config (as crane and ko build them), only /app/data for the app's user to sync into."""
        return self.push(Image("example-app-scratch", [
            Entry("app", uid=APP_UID, gid=APP_UID, directory=True),
            Entry("app/bin/example", source=self.example_app()),
            Entry("app/data", uid=APP_UID, gid=APP_UID, directory=True),
        ], entrypoint=["/app/bin/example"], user=f"{APP_UID}:{APP_UID}", env=[]))

    def push_busybox(self, repository: str = "busybox", env: list[str] | None = None) -> str:
        """busybox-static, root, CMD sh: for the tests' own shell programs. `env=[]`: no Env in its
        config, so the runtime's default PATH applies."""
        image = Image(repository, [*busybox_entries(), Entry("tmp", mode=0o1777, directory=True)], cmd=["sh"])
        if env is not None:
            image.env = env
        return self.push(image)

    def push_wrapper(self) -> str:
        """hack/push-wrapper-image.sh: the Dockerfile's `wrapper` target, built with crane."""
        ref = f"{self.registry}/restart-wrapper:test"
        env = {**os.environ, "INSECURE": "1", "TEST_ASSET_CRANE": str(self.crane)}
        result = subprocess.run(["bash", str(ROOT / "hack" / "push-wrapper-image.sh"), ref], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"push-wrapper-image.sh failed: {result.stderr}")
        return ref


def is_static(path: Path) -> bool:
    """An ELF executable with no program interpreter (PT_INTERP): it needs no libc in the image."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only, as every platform we build for
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def busybox_entries() -> list[Entry]:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    if not is_static(busybox):
        raise RuntimeError(f"{busybox} is not statically linked: install busybox-static (make packages)")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    return [Entry("bin/busybox", source=busybox),
            *(Entry(f"bin/{name}", mode=0o777, link="busybox") for name in applets if name != "busybox")]

"""The wrapper image for every architecture it ships (issue 18): `make wrapper-image` pushes an OCI
index of linux/amd64 and linux/arm64 to a real registry (Debian's docker-registry), each image with
its platform in its config and the Dockerfile target's layout; pulled back platform by platform,
each image's binary runs under its own architecture (arm64 under qemu-user, tests/wrapper/emulation.py)
from a root holding nothing but the image. And the Dockerfile's `wrapper` target cross-compiles for
a TARGETARCH other than the builder's (what `docker buildx build --platform linux/amd64,linux/arm64`
does for each platform), with no emulator in the builder."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.binaries import find_binary
from tests.support.paths import BUILD, ROOT
from tests.wrapper import emulation
from tests.wrapper.harness import ENV, architecture_of

PLATFORMS = ("linux/amd64", "linux/arm64")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
VERSION = (ROOT / "VERSION").read_text().strip()
# The Dockerfile's `wrapper` target, which the crane-built image copies (tests/docker compares the two).
CONFIG = {"User": "65532:65532", "Entrypoint": ["/restart-wrapper"], "Cmd": ["version"],
          "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}


def binary_for(platform: str) -> Path:
    return BUILD / f"linux-{platform.split('/')[1]}" / "restart-wrapper"


def crane(*args: str, text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(find_binary("crane")), "--insecure", *args], capture_output=True, text=text, check=True,
                          timeout=120)


def runs_here(arch: str) -> None:
    why = emulation.ensure(arch)
    if why and "needs root" in why:
        pytest.skip(why)
    assert why is None, why


@pytest.fixture(scope="module")
def pushed(registry) -> str:
    """`make wrapper-image IMAGE=...` against the test registry: the README's command."""
    for platform in PLATFORMS:
        assert binary_for(platform).exists(), f"{binary_for(platform)} is missing: `make wrapper` builds it"
    image = f"{registry.host}/restart-wrapper:multi"
    env = {**os.environ, "TEST_ASSET_CRANE": str(find_binary("crane"))}
    env.pop("ARCH", None)
    result = subprocess.run(["make", "-s", "wrapper-image", f"IMAGE={image}", "INSECURE=1"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    digest = crane("digest", image).stdout.strip()
    assert result.stdout.strip().splitlines()[-1] == f"{registry.host}/restart-wrapper@{digest}"  # printed by digest
    return image


def test_the_image_is_an_index_of_both_platforms(pushed):
    index = json.loads(crane("manifest", pushed).stdout)
    assert index["mediaType"] == OCI_INDEX
    platforms = [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]]
    assert platforms == list(PLATFORMS)
    repository = pushed.rsplit(":", 1)[0]
    for entry, platform in zip(index["manifests"], PLATFORMS):
        assert entry["mediaType"] == OCI_MANIFEST
        # Each platform's image is also its own tag, and is that index entry.
        tagged = crane("digest", f"{pushed}-linux-{platform.split('/')[1]}").stdout.strip()
        assert tagged == entry["digest"], platform
        assert json.loads(crane("manifest", f"{repository}@{entry['digest']}").stdout)["mediaType"] == OCI_MANIFEST


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_has_its_config_and_the_dockerfiles_layout(pushed, platform):
    config = json.loads(crane("config", "--platform", platform, pushed).stdout)
    assert (config["os"], config["architecture"]) == tuple(platform.split("/"))
    assert {key: config["config"].get(key) for key in CONFIG} == CONFIG
    assert len(config["rootfs"]["diff_ids"]) == 1

    exported = crane("export", "--platform", platform, pushed, "-", text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        assert sorted(members) == ["bin", "bin/rm", "bin/tar", "bin/test", "restart-wrapper"]
        binary = members["restart-wrapper"]
        assert (binary.isfile(), binary.mode, binary.uid, binary.gid) == (True, 0o755, 0, 0)
        assert tar.extractfile(binary).read() == binary_for(platform).read_bytes()
        assert (members["bin"].isdir(), members["bin"].mode, members["bin"].uid) == (True, 0o755, 0)
        for name in ("bin/tar", "bin/rm", "bin/test"):
            assert (members[name].issym(), members[name].linkname, members[name].uid) == (True, "../restart-wrapper", 0)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platforms_image_runs_under_its_own_architecture(pushed, platform, tmp_path):
    """Pulled for one platform and unpacked as the whole root of a chroot, as a runtime would mount
    it: its binary is that architecture's, and its entrypoint and links run there (the foreign one
    through qemu-user, which is set up for it)."""
    arch = platform.split("/")[1]
    root = tmp_path / "root"
    root.mkdir()
    exported = crane("export", "--platform", platform, pushed, "-", text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        # As a runtime unpacks it: links as they are, owners and modes kept (Python < 3.11.4 has no filter).
        tar.extractall(root, **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
    assert architecture_of(root / "restart-wrapper") == arch
    runs_here(arch)

    def chrooted(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, env=ENV, timeout=60)

    if os.geteuid() != 0:
        pytest.skip("chroot needs root (CI runs the suite as root)")
    version = chrooted("/restart-wrapper", "version")  # the image's ENTRYPOINT and CMD
    assert (version.returncode, version.stdout) == (0, f"restart-wrapper {VERSION}\n"), version.stderr
    assert [chrooted("/bin/test", "-d", path).returncode for path in ("/bin", "/restart-wrapper")] == [0, 1]
    run = chrooted("/restart-wrapper", "run", "--exit-policy=restart", "--restart-file=/trigger", "--",
                   "/bin/test", "-e", "/trigger")
    assert run.returncode == 1, run.stderr  # supervised a program of the image's own (the test tool), status passed on


def test_a_binary_of_another_architecture_is_refused(registry, tmp_path):
    """The platform in the config comes from the binary's ELF machine, never from a guess."""
    env = {**os.environ, "TEST_ASSET_CRANE": str(find_binary("crane")), "INSECURE": "1",
           "WRAPPER_BINARY": str(binary_for("linux/amd64")), "PLATFORM": "linux/arm64"}
    image = f"{registry.host}/restart-wrapper:mislabelled"
    result = subprocess.run(["bash", str(ROOT / "hack" / "push-wrapper-image.sh"), image], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "is not a linux/arm64 program (ELF machine 62)" in result.stderr
    tags = subprocess.run([str(find_binary("crane")), "--insecure", "ls", f"{registry.host}/restart-wrapper"],
                          capture_output=True, text=True, timeout=60)
    assert "mislabelled" not in tags.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_the_dockerfile_cross_compiles_the_wrapper_for_arm64(docker_daemon, docker_bases, tmp_path):
    """`docker build --platform linux/arm64 --target wrapper .` on this amd64 builder, with no
    emulator in it: the build stage runs on the build platform (FROM --platform=$BUILDPLATFORM) and
    cross-compiles with Debian's gcc-aarch64-linux-gnu and musl-dev:arm64. What buildx does for
    each platform of `--platform linux/amd64,linux/arm64`."""
    if emulation.HOST_ARCH != "amd64":
        pytest.skip("written for an amd64 builder: the cross-compiled platform is arm64")
    image = "restart-process/restart-wrapper:arm64-test"
    built = docker_daemon.docker("build", *docker_daemon.build_options(), "--platform", "linux/arm64",
                                 "--target", "wrapper", "-t", image, ".", check=False, timeout=1800)
    assert built.returncode == 0, (built.stdout + built.stderr)[-6000:]
    assert "built restart-wrapper for linux/arm64" in built.stdout + built.stderr
    inspected = json.loads(docker_daemon.docker("image", "inspect", image).stdout)[0]
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "arm64")
    assert {key: inspected["Config"].get(key) for key in CONFIG} == CONFIG

    saved = docker_daemon.docker("save", image, text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        (layer,) = json.load(archive.extractfile("manifest.json"))[0]["Layers"]
        with tarfile.open(fileobj=io.BytesIO(archive.extractfile(layer).read())) as tar:
            names = sorted(m.name.rstrip("/") for m in tar.getmembers())
            binary = tar.extractfile("restart-wrapper").read()
    assert names == ["bin", "bin/rm", "bin/tar", "bin/test", "restart-wrapper"]
    (tmp_path / "restart-wrapper").write_bytes(binary)
    (tmp_path / "restart-wrapper").chmod(0o755)
    assert architecture_of(tmp_path / "restart-wrapper") == "arm64" and len(binary) <= 100_000
    runs_here("arm64")
    version = subprocess.run([str(tmp_path / "restart-wrapper"), "version"], capture_output=True, text=True,
                             env=ENV, timeout=60)
    assert version.stdout == f"restart-wrapper {VERSION}\n", version.stderr


def _image_volume_references() -> list[tuple[str, str]]:
    """(case, path inside the wrapper image) for everything the image-volume goldens make a
    container use under the volume's mount: the wrapper command, and the tools on PATH."""
    import yaml

    from tests.support.golden import expected_output, inputs

    found = []
    for case in inputs():
        for document in yaml.safe_load_all(expected_output(case).read_text()):
            spec = (document or {}).get("spec") or {}
            volumes = {v["name"]: v for v in spec.get("volumes") or [] if "image" in v}
            for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
                for mount in container.get("volumeMounts") or []:
                    if mount["name"] not in volumes:
                        continue
                    base = mount["mountPath"].rstrip("/") + "/"
                    used = [*(container.get("command") or [])[:1]]
                    for entry in container.get("env") or []:
                        if entry["name"] == "PATH":
                            used += [f"{d}/{tool}" for d in entry.get("value", "").split(":") if d.startswith(base)
                                     for tool in ("tar", "rm", "test")]
                    found += [(case.name, path[len(base):]) for path in used if path.startswith(base)]
    return found


def test_what_the_image_volume_goldens_use_is_in_the_image(pushed, tmp_path):
    """The seam between the injection and the image: mounted as an image volume, the wrapper
    image is all a container has at /restart-process, so every path the image-volume goldens
    run from there -- the wrapper, and tar, rm and test on PATH -- must be in it, executable."""
    references = _image_volume_references()
    assert {case for case, _ in references} >= {"delivery-image-volume.yaml", "delivery-image-volume-sidecar.yaml"}, references
    assert {path for _, path in references} >= {"restart-wrapper", "bin/tar", "bin/rm", "bin/test"}
    root = tmp_path / "root"
    root.mkdir()
    exported = crane("export", "--platform", "linux/amd64", pushed, "-", text=False).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        tar.extractall(root, **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
    for case, path in references:
        target = (root / path).resolve()
        assert target.is_relative_to(root.resolve()) and target.is_file() and os.access(target, os.X_OK), (case, path)

"""Every wrapper test runs against the static release build, the ASan+UBSan build and the release
build of each other architecture (arm64 on amd64: under qemu-user, set up by emulation.py).

A test that qemu-user cannot run for an emulated build carries `@pytest.mark.emulator_limit(reason)`,
or `emulator_limit(reason, when={parameter: value})` for some of its parameters alone: it is
skipped for that build alone, with the reason, and runs for the others. The reason says what proves
the behaviour on that architecture instead (most often tests/wrapper/test_emulation.py)."""

import pytest

from . import emulation
from .harness import BUILDS, FOREIGN, RELEASES, runnable


def pytest_configure(config):
    config.addinivalue_line("markers", "emulator_limit(reason, when={}): qemu-user cannot run this test (with "
                                       "these parameters); skipped for emulated builds only (tests/wrapper/conftest.py)")


def build_of(item) -> str | None:
    """The build a test item runs against ("static", "asan", "arm64"), from its parameters."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    for value in params.values():
        if isinstance(value, str) and value.partition("-as-")[0] in BUILDS:
            return value.partition("-as-")[0]
    return None


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/wrapper/" in str(item.fspath):
            item.add_marker(pytest.mark.wrapper)
        build = build_of(item)
        if build not in FOREIGN:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        for limit in item.iter_markers("emulator_limit"):
            if all(params.get(name) == value for name, value in limit.kwargs.get("when", {}).items()):
                item.add_marker(pytest.mark.skip(reason=f"{emulation.EMULATOR} for {build}: {limit.args[0]}"))
                break


@pytest.fixture(params=list(BUILDS), scope="session")
def wrapper(request):
    return runnable(request.param)


@pytest.fixture(params=RELEASES, scope="session")
def static_wrapper(request):
    """Each release build: this machine's, and each other architecture's."""
    return runnable(request.param)


@pytest.fixture(scope="session")
def gotar(tmp_path_factory):
    """tests/wrapper/gotar built once per session: Go's archive/tar, as Tilt and kubectl write archives."""
    from .archives import build_gotar

    return build_gotar(tmp_path_factory.mktemp("gotar"))


@pytest.fixture(scope="session")
def multicall():
    """{build: directory} with a copy of each build in a 0755 directory any uid can reach (the
    checkout may be private) and `tar`, `rm` and `test` symlinks to it there: the multi-call names."""
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="restart-wrapper-multicall-"))
    try:
        base.chmod(0o755)
        directories = {}
        for build in BUILDS:
            binary = runnable(build)
            directory = base / build
            directory.mkdir(mode=0o755)
            shutil.copyfile(binary, directory / "restart-wrapper")
            (directory / "restart-wrapper").chmod(0o755)
            for name in ("tar", "rm", "test"):
                (directory / name).symlink_to("restart-wrapper")
            directories[build] = directory
        yield directories
    finally:
        shutil.rmtree(base)


@pytest.fixture
def world_tmp():
    """A fresh 0755 directory any uid can reach (pytest's tmp_path is under a 0700 directory);
    read-only directories extracted or made in it are opened up again to remove it."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="restart-wrapper-test-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["chmod", "-R", "u+rwX", str(path)], capture_output=True)
    shutil.rmtree(path)

"""Every wrapper test runs against the static release build and the ASan+UBSan build."""

import pytest

from .harness import BUILD

BUILDS = {"static": BUILD / "restart-wrapper", "asan": BUILD / "restart-wrapper-asan"}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/wrapper/" in str(item.fspath):
            item.add_marker(pytest.mark.wrapper)


@pytest.fixture(params=list(BUILDS), scope="session")
def wrapper(request):
    binary = BUILDS[request.param]
    if not binary.exists():
        pytest.fail(f"{binary} is missing: `make wrapper wrapper-asan` builds it (make test does)")
    return binary


@pytest.fixture(scope="session")
def static_wrapper():
    binary = BUILDS["static"]
    if not binary.exists():
        pytest.fail(f"{binary} is missing: `make wrapper` builds it")
    return binary


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
        for build, binary in BUILDS.items():
            if not binary.exists():
                pytest.fail(f"{binary} is missing: `make wrapper wrapper-asan` builds it (make test does)")
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

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

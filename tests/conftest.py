"""Shared fixtures: the two reader backends, and the public corpus beside the project."""

from __future__ import annotations

import os
import shutil

import pytest

from fastcap._ffi import native_available


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory):
    """The trust store's cached parse goes to a folder of the test run's (the commands the
    tests start inherit it), never into the user's ~/.cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


def pytest_configure(config) -> None:
    """FASTCAP_REQUIRE_NATIVE=DIR (the sanitizer CI step) turns "native module missing" from
    a skip into an error, and checks that the module under test is the one built in DIR."""
    want = os.environ.get("FASTCAP_REQUIRE_NATIVE")
    if not want:
        return
    if not native_available():
        raise pytest.UsageError("FASTCAP_REQUIRE_NATIVE is set but fastcap._native is missing")
    import fastcap._native as mod

    if not os.path.realpath(mod.__file__).startswith(os.path.realpath(want)):
        raise pytest.UsageError(f"fastcap._native comes from {mod.__file__}, not {want}")


@pytest.fixture(params=["native", "python"])
def backend(request) -> str:
    if request.param == "native" and not native_available():
        pytest.skip("fastcap._native is not built (pip install . with a C compiler)")
    return request.param


@pytest.fixture
def require_native() -> None:
    if not native_available():
        pytest.skip("fastcap._native is not built (pip install . with a C compiler)")


@pytest.fixture
def tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install -y tshark)")
    return exe

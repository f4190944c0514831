"""Shared fixtures: the two reader backends, and the public corpus beside the project."""

from __future__ import annotations

import shutil

import pytest

from fastcap.native import native_available


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

"""The only importer of fastcap._native, the cffi-built C module, which is optional: a machine
without a compiler still gets correct results from the pure-Python twins.

The C walker (native.py) and the C reassembler core (reasm_native.py) both load it from here,
so neither has to import the other to learn whether it exists."""

from __future__ import annotations

from typing import Any

try:
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised on installs without a compiler
    _native = None

BACKENDS = ("native", "python")

ffi: Any = None if _native is None else _native.ffi
lib: Any = None if _native is None else _native.lib


def native_available() -> bool:
    return _native is not None


def use_native(backend: str) -> bool:
    """Whether `backend` (auto/native/python) means the C code; `native` insists on it."""
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"unknown backend {backend!r}; use auto, native or python")
    if backend == "python" or (backend == "auto" and _native is None):
        return False
    if _native is None:
        raise ImportError("fastcap._native is not built: reinstall with a C compiler "
                          "(pip install .) or use backend='python'")
    return True

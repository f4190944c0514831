"""The only importer of fastcap._native, the cffi-built C module, which is optional: a machine
without a compiler still gets correct results from the pure-Python twins.

The C walker (native.py) and the C reassembler core (reasm_native.py) both load it from here,
so neither has to import the other to learn whether it exists.

It is also where C constants and struct layouts reach Python, so none is typed twice: they come
from csrc/fastcap.h, through the built module's `ffi` or, without one, through cffi parsing the
header text (no compiler needed).  The build ships the header as package data (`_fastcap.h`);
a source checkout falls back to csrc/fastcap.h."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cffi

try:
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised on installs without a compiler
    _native = None

BACKENDS = ("native", "python")

HEADER_NAME = "_fastcap.h"  # the package-data copy of csrc/fastcap.h
_HERE = Path(__file__).resolve().parent
HEADER_PATHS = (_HERE / HEADER_NAME, _HERE.parent.parent / "csrc" / "fastcap.h")


def header_path() -> Path:
    """Where this installation's copy of fastcap.h is: the shipped one, else the source tree's."""
    for p in HEADER_PATHS:
        if p.is_file():
            return p
    raise ImportError(f"fastcap.h not found (looked for {', '.join(map(str, HEADER_PATHS))}): "
                      "reinstall fastcap")


def cdef_text(header: str) -> str:
    """fastcap.h as cffi's cdef takes it: the preprocessor lines dropped (as build_native does)."""
    return "\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#"))


def parse_header(header: str) -> cffi.FFI:
    """An FFI that knows fastcap.h's types and constants; it can call nothing."""
    parsed = cffi.FFI()
    parsed.cdef(cdef_text(header))
    return parsed


ffi: Any = parse_header(header_path().read_text()) if _native is None else _native.ffi
lib: Any = None if _native is None else _native.lib


def enum_members(ffi: Any, name: str, prefix: str) -> Mapping[str, int]:
    """The members of C `enum name` as `ffi` knows it, each without `prefix`."""
    members = ffi.typeof(f"enum {name}").relements
    if not all(k.startswith(prefix) for k in members):
        raise ImportError(f"enum {name}: a member lacks the prefix {prefix}")
    return MappingProxyType({k.removeprefix(prefix): v for k, v in members.items()})


_CODES = {"int8_t": "b", "uint8_t": "B", "int16_t": "h", "uint16_t": "H", "int32_t": "i",
          "uint32_t": "I", "int64_t": "q", "uint64_t": "Q"}


def _layout(ffi: Any, ctype: Any, prefix: str = "") -> tuple[str, list[str]]:
    fmt, names, at = [], [], 0
    for name, field in ctype.fields:
        if field.offset > at:
            fmt.append(f"{field.offset - at}x")
        t, labels = field.type, [prefix + name]
        if t.kind == "array":
            t, labels = t.item, [f"{prefix}{name}[{i}]" for i in range(t.length)]
        for label in labels:
            if t.kind == "struct":
                sub_fmt, sub_names = _layout(ffi, t, label + ".")
                fmt.append(sub_fmt)
                names.extend(sub_names)
            else:
                fmt.append(_CODES[t.cname])
                names.append(label)
        at = field.offset + ffi.sizeof(field.type)
    if ffi.sizeof(ctype) > at:
        fmt.append(f"{ffi.sizeof(ctype) - at}x")
    return "".join(fmt), names


def struct_layout(ffi: Any, cname: str) -> tuple[struct.Struct, tuple[str, ...]]:
    """A struct.Struct reading C struct `cname` (integers, arrays of them, nested structs;
    padding skipped) in one unpack_from, and the flat names of the values it gives, in order
    ("dir[1].isn").  Derived from `ffi`'s own view of the struct, so it cannot drift."""
    fmt, names = _layout(ffi, ffi.typeof(cname))
    layout = struct.Struct("=" + fmt)
    if layout.size != ffi.sizeof(cname):
        raise ImportError(f"{cname}: derived layout {fmt!r} has {layout.size} bytes, "
                          f"the C struct {ffi.sizeof(cname)}")
    return layout, tuple(names)


try:
    WALK_CODES = enum_members(ffi, "fc_walk_code", "FC_")  # FULL, END, TRUNCATED, CORRUPT, ...
    FRAME_FLAGS = enum_members(ffi, "fc_frame_flag", "FC_F_")  # NO_TS, SNAPPED, OVER_SNAPLEN
    REASM_ACCT = enum_members(ffi, "fc_reasm_acct", "FC_")  # CONN_OVERHEAD, SEG_BYTES, ...
    # fc_conn_info: one unpack_from reads a finished connection's counters; CONN_INFO_FIELDS
    # names the values in the order the tuple holds them.
    CONN_INFO, CONN_INFO_FIELDS = struct_layout(ffi, "fc_conn_info")
except ffi.error as exc:  # a C module built from an older fastcap.h
    raise ImportError(f"fastcap._native does not match this fastcap ({exc}): reinstall it "
                      "(pip install .)") from exc


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

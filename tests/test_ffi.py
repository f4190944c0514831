"""C constants and struct layouts reach Python from csrc/fastcap.h alone (fastcap._ffi): with the
C module built, through its ffi; without it, through cffi parsing the header the package ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap import _ffi
from fastcap.read import frames, walkstatus
from fastcap.tcp import reassembly

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "csrc" / "fastcap.h"
ENUMS = {"WALK_CODES": ("fc_walk_code", "FC_"), "FRAME_FLAGS": ("fc_frame_flag", "FC_F_"),
         "REASM_ACCT": ("fc_reasm_acct", "FC_")}


@pytest.fixture(scope="module")
def parsed():
    return _ffi.parse_header(HEADER.read_text())


def _const(parsed, name: str) -> int:
    """A constant by its C name, through the parser's constant table (not enum_members)."""
    return getattr(parsed.dlopen(None), name)


def test_loaded_constants_equal_the_headers(parsed) -> None:
    for attr, (enum, prefix) in ENUMS.items():
        assert dict(getattr(_ffi, attr)) == dict(_ffi.enum_members(parsed, enum, prefix)), attr
    layout, names = _ffi.struct_layout(parsed, "fc_conn_info")
    assert (layout.format, names) == (_ffi.CONN_INFO.format, _ffi.CONN_INFO_FIELDS)
    assert _ffi.CONN_INFO.size == parsed.sizeof("fc_conn_info") == _ffi.ffi.sizeof("fc_conn_info")


def test_built_module_agrees_with_the_header(parsed, require_native) -> None:
    from fastcap import _native

    assert _ffi.ffi is _native.ffi
    for name in ("FC_BAD_IFACE", "FC_F_OVER_SNAPLEN", "FC_CONN_OVERHEAD", "FC_SEG_INIT"):
        assert getattr(_native.lib, name) == _const(parsed, name)
    for cname in ("fc_conn_info", "fc_dir_info", "fc_cols", "fc_status", "fc_tcp_rows"):
        assert _native.ffi.sizeof(cname) == parsed.sizeof(cname), cname


def test_module_constants_are_the_headers(parsed) -> None:
    def c(name: str) -> int:
        return _const(parsed, name)

    assert [walkstatus.FULL, walkstatus.END, walkstatus.TRUNCATED, walkstatus.CORRUPT,
            walkstatus.BLOCK, walkstatus.BAD_IFACE] == [
        c(f"FC_{n}") for n in ("FULL", "END", "TRUNCATED", "CORRUPT", "BLOCK", "BAD_IFACE")]
    assert [frames.F_NO_TS, frames.F_SNAPPED, frames.F_OVER_SNAPLEN] == [
        c("FC_F_NO_TS"), c("FC_F_SNAPPED"), c("FC_F_OVER_SNAPLEN")]
    assert [reassembly.CONN_OVERHEAD, reassembly.SEG_BYTES, reassembly.DATA_INIT,
            reassembly.SEG_INIT] == [c("FC_CONN_OVERHEAD"), c("FC_SEG_BYTES"),
                                     c("FC_DATA_INIT"), c("FC_SEG_INIT")]


def test_conn_info_unpacks_every_field_where_c_put_it() -> None:
    """Distinct values written through cffi field by field come back, in CONN_INFO_FIELDS
    order, from the one unpack_from the C reassembler driver uses."""
    ffi = _ffi.ffi
    top, per_dir = (dict(ffi.typeof(c).fields) for c in ("fc_conn_info", "fc_dir_info"))
    info = ffi.new("fc_conn_info *")
    want = []
    for i, name in enumerate(_ffi.CONN_INFO_FIELDS):
        head, _, leaf = name.partition(".")
        ctype = per_dir[leaf].type if leaf else top[head].type
        value = (-1) ** i * (i + 1) * (1 << 33 if ffi.sizeof(ctype) == 8 else 1)
        setattr(info.dir[int(head[4:-1])] if leaf else info, leaf or name, value)
        want.append(value)
    assert list(_ffi.CONN_INFO.unpack_from(ffi.buffer(info))) == want
    assert len(want) == len(top) - 1 + 2 * len(per_dir)


def test_layout_skips_padding_and_expands_nested_arrays() -> None:
    f = _ffi.parse_header("""
        typedef struct { int8_t c; int32_t d; } inner;
        typedef struct { int16_t a; int64_t b; inner e[2]; uint8_t z; } outer;
        """)
    layout, names = _ffi.struct_layout(f, "outer")
    assert layout.size == f.sizeof("outer")
    assert names == ("a", "b", "e[0].c", "e[0].d", "e[1].c", "e[1].d", "z")
    o = f.new("outer *", {"a": -2, "b": 1 << 40, "e": [{"c": 3, "d": -4}, {"c": -5, "d": 6}],
                          "z": 255})
    assert layout.unpack_from(f.buffer(o)) == (-2, 1 << 40, 3, -4, -5, 6, 255)


def test_enum_members_insist_on_the_prefix() -> None:
    f = _ffi.parse_header("enum e { FC_A = 1, OTHER = 2 };")
    assert dict(_ffi.enum_members(f, "e", "")) == {"FC_A": 1, "OTHER": 2}
    with pytest.raises(ImportError, match="prefix"):
        _ffi.enum_members(f, "e", "FC_")


_PURE_PROBE = """
import json, sys
sys.modules["fastcap._native"] = None  # what an install without a compiler looks like
from fastcap import _ffi, frames, reassembly, walkstatus
from fastcap.tcp.reassembly import Reassembler
print(json.dumps({
    "native": _ffi.native_available(), "header": str(_ffi.header_path()),
    "walk": dict(_ffi.WALK_CODES), "flags": dict(_ffi.FRAME_FLAGS),
    "acct": dict(_ffi.REASM_ACCT), "conn_info": [_ffi.CONN_INFO.format, _ffi.CONN_INFO.size],
    "fields": _ffi.CONN_INFO_FIELDS, "mods": [walkstatus.BAD_IFACE, frames.F_OVER_SNAPLEN,
    reassembly.SEG_BYTES], "backend": _ffi.use_native("auto")}))
"""


def test_built_package_ships_the_header_and_runs_without_the_c_module(tmp_path: Path) -> None:
    """The build copies csrc/fastcap.h into the package; with fastcap._native unavailable,
    that copy alone gives the same constants and layouts."""
    lib = tmp_path / "lib"
    env = {**os.environ, "FASTCAP_PURE": "1"}
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    shipped = lib / "fastcap" / _ffi.HEADER_NAME
    assert shipped.read_bytes() == HEADER.read_bytes()
    assert not list((lib / "fastcap").glob("_native*"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTCAP_")}
    env["PYTHONPATH"] = str(lib)
    out = subprocess.run([sys.executable, "-c", _PURE_PROBE], cwd=tmp_path, env=env,
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out)
    assert got["native"] is False and got["backend"] is False
    assert Path(got["header"]) == shipped
    assert got["walk"] == dict(_ffi.WALK_CODES) and got["flags"] == dict(_ffi.FRAME_FLAGS)
    assert got["acct"] == dict(_ffi.REASM_ACCT)
    assert got["conn_info"] == [_ffi.CONN_INFO.format, _ffi.CONN_INFO.size]
    assert tuple(got["fields"]) == _ffi.CONN_INFO_FIELDS
    assert got["mods"] == [walkstatus.BAD_IFACE, frames.F_OVER_SNAPLEN, reassembly.SEG_BYTES]


def test_source_tree_falls_back_to_csrc(tmp_path) -> None:
    """Run from a checkout (no shipped copy beside the modules), the header is csrc's."""
    assert not (ROOT / "src" / "fastcap" / "_fastcap.h").exists()
    probe = "import fastcap._ffi as f; print(f.__file__); print(f.header_path())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTCAP_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    assert Path(out[0]).resolve().parent == ROOT / "src" / "fastcap"
    assert Path(out[1]) == HEADER


_STALE_PROBE = """
import sys, types
class Stale:  # the ffi of a C module built before fastcap.h gained a declaration
    class error(Exception):
        pass
    def typeof(self, name):
        raise self.error("undefined " + name)
sys.modules["fastcap._native"] = types.SimpleNamespace(ffi=Stale(), lib=None)
try:
    import fastcap._ffi
except ImportError as exc:
    print(exc)
"""


def test_stale_c_module_is_named_at_import(tmp_path: Path) -> None:
    import fastcap

    env = {**os.environ, "PYTHONPATH": str(Path(fastcap.__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", _STALE_PROBE], cwd=tmp_path, env=env,
                         check=True, capture_output=True, text=True).stdout
    assert "fastcap._native does not match this fastcap" in out
    assert "undefined enum fc_walk_code" in out


def test_ffi_sits_below_every_stage() -> None:
    """walkstatus, frames and reassembly read their constants from _ffi, so it imports nothing
    of fastcap but the C module (any import, even inside a function, could close a cycle)."""
    import ast

    tree = ast.parse(Path(_ffi.__file__).read_text())
    imported = {(n.level, n.module, tuple(a.name for a in n.names))
                for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert imported == {(1, None, ("_native",))}
    assert not any(isinstance(n, ast.Import) and any(a.name.startswith("fastcap")
                                                      for a in n.names) for n in ast.walk(tree))

"""cffi (API mode) builder for fastcap._native.

setup.py names `ffibuilder` in cffi_modules, so `pip install .` compiles csrc/ with the
machine's C compiler.  fastcap.h doubles as the cdef, so every declaration is written once.
"""

import os
import pathlib
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["walk.c", "reassembly.c", "guard.c", "carry.c"]


def _cdef_text() -> str:
    # fastcap._ffi.cdef_text filters the same way for the pure-Python install
    lines = (HERE / "fastcap.h").read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _compile_args() -> list[str]:
    args = ["-O3", "-std=gnu11", "-fno-strict-aliasing"]
    if os.environ.get("FASTCAP_SANITIZE") == "1":
        # -fno-wrapv undoes Python's -fwrapv, so UBSan sees signed overflow too.
        args += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-wrapv"]
    return args


def _link_args() -> list[str]:
    return ["-fsanitize=address,undefined"] if os.environ.get("FASTCAP_SANITIZE") == "1" else []


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
# setup.py wants paths relative to the project; a stand-alone build (python csrc/build_native.py
# [OUTDIR], e.g. with FASTCAP_SANITIZE=1 for the sanitizer CI step) compiles inside OUTDIR, so
# it needs them absolute.
_place = str if __name__ == "__main__" else os.path.relpath
ffibuilder.set_source(
    "fastcap._native",
    '#include <stdint.h>\n#include "fastcap.h"\n',
    sources=[_place(HERE / s) for s in SOURCES],
    include_dirs=[_place(HERE)],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
)

if __name__ == "__main__":
    print(ffibuilder.compile(tmpdir=sys.argv[1] if len(sys.argv) > 1
                             else str(HERE.parent / "build" / "cffi")))

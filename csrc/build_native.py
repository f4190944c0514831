"""cffi (API mode) builder for fastcap._native.

setup.py names `ffibuilder` in cffi_modules, so `pip install .` compiles csrc/ with the
machine's C compiler.  fastcap.h doubles as the cdef, so every declaration is written once.
"""

import os
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["walk.c", "reassembly.c"]


def _cdef_text() -> str:
    lines = (HERE / "fastcap.h").read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _compile_args() -> list[str]:
    args = ["-O3", "-std=gnu11", "-fno-strict-aliasing"]
    if os.environ.get("FASTCAP_SANITIZE") == "1":
        args += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    return args


ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
ffibuilder.set_source(
    "fastcap._native",
    '#include <stdint.h>\n#include "fastcap.h"\n',
    sources=[os.path.relpath(HERE / s) for s in SOURCES],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=_compile_args(),
    extra_link_args=["-fsanitize=address,undefined"]
    if os.environ.get("FASTCAP_SANITIZE") == "1"
    else [],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent / "build" / "cffi"), verbose=True)

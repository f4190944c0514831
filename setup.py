"""Build hook: cffi compiles csrc/ into fastcap._native during `pip install .`.

Set FASTCAP_PURE=1 to skip the C extension; fastcap then runs on its pure-Python fallback.
Either way the package ships csrc/fastcap.h as fastcap/_fastcap.h: fastcap._ffi reads the C
constants and struct layouts from it when the C module is not built.
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HEADER = Path(__file__).resolve().parent / "csrc" / "fastcap.h"


class BuildPyWithHeader(build_py):
    """build_py that also copies the C header into the package."""

    def run(self) -> None:
        super().run()
        if not self.dry_run:
            target = Path(self.build_lib) / "fastcap" / "_fastcap.h"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HEADER, target)


cffi_modules = [] if os.environ.get("FASTCAP_PURE") == "1" else ["csrc/build_native.py:ffibuilder"]
setup(cffi_modules=cffi_modules, cmdclass={"build_py": BuildPyWithHeader})

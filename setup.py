"""Build hook: cffi compiles csrc/ into fastcap._native during `pip install .`.

Set FASTCAP_PURE=1 to skip the C extension; fastcap then runs on its pure-Python fallback.
"""

import os

from setuptools import setup

cffi_modules = [] if os.environ.get("FASTCAP_PURE") == "1" else ["csrc/build_native.py:ffibuilder"]
setup(cffi_modules=cffi_modules)

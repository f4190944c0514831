"""Deprecated name of :mod:`fastcap.tcp.core_c`: the same module, under its old name."""

import sys
import warnings

from .tcp import core_c as _module

warnings.warn("fastcap.reasm_native is now fastcap.tcp.core_c",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.tcp.raw`: the same module, under its old name."""

import sys
import warnings

from .tcp import raw as _module

warnings.warn("fastcap.rawconn is now fastcap.tcp.raw",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

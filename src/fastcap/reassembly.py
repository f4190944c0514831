"""Deprecated name of :mod:`fastcap.tcp.reassembly`: the same module, under its old name."""

import sys
import warnings

from .tcp import reassembly as _module

warnings.warn("fastcap.reassembly is now fastcap.tcp.reassembly",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

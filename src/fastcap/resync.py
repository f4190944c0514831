"""Deprecated name of :mod:`fastcap.read.resync`: the same module, under its old name."""

import sys
import warnings

from .read import resync as _module

warnings.warn("fastcap.resync is now fastcap.read.resync",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

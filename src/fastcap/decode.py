"""Deprecated name of :mod:`fastcap.select.decode`: the same module, under its old name."""

import sys
import warnings

from .select import decode as _module

warnings.warn("fastcap.decode is now fastcap.select.decode",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

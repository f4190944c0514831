"""Deprecated name of :mod:`fastcap.select.selection`: the same module, under its old name."""

import sys
import warnings

from .select import selection as _module

warnings.warn("fastcap.selection is now fastcap.select.selection",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

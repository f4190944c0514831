"""Deprecated name of :mod:`fastcap.select.flows`: the same module, under its old name."""

import sys
import warnings

from .select import flows as _module

warnings.warn("fastcap.flows is now fastcap.select.flows",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

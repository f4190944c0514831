"""Deprecated name of :mod:`fastcap.read.walkstatus`: the same module, under its old name."""

import sys
import warnings

from .read import walkstatus as _module

warnings.warn("fastcap.walkstatus is now fastcap.read.walkstatus",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.out.follow`: the same module, under its old name."""

import sys
import warnings

from .out import follow as _module

warnings.warn("fastcap.follow is now fastcap.out.follow",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

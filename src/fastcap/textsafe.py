"""Deprecated name of :mod:`fastcap.out.textsafe`: the same module, under its old name."""

import sys
import warnings

from .out import textsafe as _module

warnings.warn("fastcap.textsafe is now fastcap.out.textsafe",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.read.frames`: the same module, under its old name."""

import sys
import warnings

from .read import frames as _module

warnings.warn("fastcap.frames is now fastcap.read.frames",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.run.ranges`: the same module, under its old name."""

import sys
import warnings

from .run import ranges as _module

warnings.warn("fastcap.ranges is now fastcap.run.ranges",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

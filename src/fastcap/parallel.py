"""Deprecated name of :mod:`fastcap.run.parallel`: the same module, under its old name."""

import sys
import warnings

from .run import parallel as _module

warnings.warn("fastcap.parallel is now fastcap.run.parallel",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.run.streamed`: the same module, under its old name."""

import sys
import warnings

from .run import streamed as _module

warnings.warn("fastcap.streamed is now fastcap.run.streamed",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.read.capture`: the same module, under its old name."""

import sys
import warnings

from .read import capture as _module

warnings.warn("fastcap.capture is now fastcap.read.capture",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

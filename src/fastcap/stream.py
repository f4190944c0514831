"""Deprecated name of :mod:`fastcap.read.stream`: the same module, under its old name."""

import sys
import warnings

from .read import stream as _module

warnings.warn("fastcap.stream is now fastcap.read.stream",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.read.linktypes`: the same module, under its old name."""

import sys
import warnings

from .read import linktypes as _module

warnings.warn("fastcap.linktypes is now fastcap.read.linktypes",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

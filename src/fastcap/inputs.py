"""Deprecated name of :mod:`fastcap.read.inputs`: the same module, under its old name."""

import sys
import warnings

from .read import inputs as _module

warnings.warn("fastcap.inputs is now fastcap.read.inputs",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.out.report`: the same module, under its old name."""

import sys
import warnings

from .out import report as _module

warnings.warn("fastcap.report is now fastcap.out.report",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.judge.diagnose`: the same module, under its old name."""

import sys
import warnings

from .judge import diagnose as _module

warnings.warn("fastcap.diagnose is now fastcap.judge.diagnose",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

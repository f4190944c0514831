"""Deprecated name of :mod:`fastcap.judge.x509names`: the same module, under its old name."""

import sys
import warnings

from .judge import x509names as _module

warnings.warn("fastcap.x509names is now fastcap.judge.x509names",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

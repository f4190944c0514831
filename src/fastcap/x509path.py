"""Deprecated name of :mod:`fastcap.judge.x509path`: the same module, under its old name."""

import sys
import warnings

from .judge import x509path as _module

warnings.warn("fastcap.x509path is now fastcap.judge.x509path",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

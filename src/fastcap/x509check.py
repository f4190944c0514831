"""Deprecated name of :mod:`fastcap.judge.x509check`: the same module, under its old name."""

import sys
import warnings

from .judge import x509check as _module

warnings.warn("fastcap.x509check is now fastcap.judge.x509check",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

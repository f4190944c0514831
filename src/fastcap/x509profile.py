"""Deprecated name of :mod:`fastcap.judge.x509profile`: the same module, under its old name."""

import sys
import warnings

from .judge import x509profile as _module

warnings.warn("fastcap.x509profile is now fastcap.judge.x509profile",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

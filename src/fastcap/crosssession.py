"""Deprecated name of :mod:`fastcap.judge.crosssession`: the same module, under its old name."""

import sys
import warnings

from .judge import crosssession as _module

warnings.warn("fastcap.crosssession is now fastcap.judge.crosssession",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

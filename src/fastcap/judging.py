"""Deprecated name of :mod:`fastcap.judge.judging`: the same module, under its old name."""

import sys
import warnings

from .judge import judging as _module

warnings.warn("fastcap.judging is now fastcap.judge.judging",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.read.pcapng`: the same module, under its old name."""

import sys
import warnings

from .read import pcapng as _module

warnings.warn("fastcap.pcapng is now fastcap.read.pcapng",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

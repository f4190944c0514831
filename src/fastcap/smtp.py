"""Deprecated name of :mod:`fastcap.proto.smtp`: the same module, under its old name."""

import sys
import warnings

from .proto import smtp as _module

warnings.warn("fastcap.smtp is now fastcap.proto.smtp",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.proto.ja`: the same module, under its old name."""

import sys
import warnings

from .proto import ja as _module

warnings.warn("fastcap.ja is now fastcap.proto.ja",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

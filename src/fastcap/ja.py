"""Deprecated name of :mod:`fastcap.proto.tls.ja`: the same module, under its old name."""

import sys
import warnings

from .proto.tls import ja as _module

warnings.warn("fastcap.ja is now fastcap.proto.tls.ja",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

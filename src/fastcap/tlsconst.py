"""Deprecated name of :mod:`fastcap.proto.tls.const`: the same module, under its old name."""

import sys
import warnings

from .proto.tls import const as _module

warnings.warn("fastcap.tlsconst is now fastcap.proto.tls.const",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

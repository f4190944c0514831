"""Deprecated name of :mod:`fastcap.proto.tls`: the same module, under its old name."""

import sys
import warnings

from .proto import tls as _module

warnings.warn("fastcap.tls is now fastcap.proto.tls",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

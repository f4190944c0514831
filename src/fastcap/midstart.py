"""Deprecated name of :mod:`fastcap.proto.midstart`: the same module, under its old name."""

import sys
import warnings

from .proto import midstart as _module

warnings.warn("fastcap.midstart is now fastcap.proto.midstart",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.proto.tlsconst`: the same module, under its old name."""

import sys
import warnings

from .proto import tlsconst as _module

warnings.warn("fastcap.tlsconst is now fastcap.proto.tlsconst",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

"""Deprecated name of :mod:`fastcap.judge.issuer_evidence`: the same module, under its old name."""

import sys
import warnings

from .judge import issuer_evidence as _module

warnings.warn("fastcap.issuer_evidence is now fastcap.judge.issuer_evidence",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

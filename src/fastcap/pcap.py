"""Deprecated name of :mod:`fastcap.read.pcap`: the same module, under its old name."""

import sys
import warnings

from .read import pcap as _module

warnings.warn("fastcap.pcap is now fastcap.read.pcap",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _module

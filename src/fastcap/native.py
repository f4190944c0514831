"""Deprecated: the walker is :mod:`fastcap.read.walker`, the C reassembler core
:mod:`fastcap.tcp.core_c`, the loader :mod:`fastcap._ffi`.  This module names them all as
it always did."""

import warnings

from ._ffi import BACKENDS as BACKENDS
from ._ffi import native_available as native_available
from .read.walker import NativeWalker as NativeWalker
from .read.walker import PythonWalker as PythonWalker
from .read.walker import Walker as Walker
from .read.walker import get_walker as get_walker
from .tcp.core_c import NativeReassemblerCore as NativeReassemblerCore
from .tcp.core_c import ReassemblerCore as ReassemblerCore
from .tcp.reassembly import get_reassembler_core as get_reassembler_core

warnings.warn("fastcap.native is now fastcap.read.walker, fastcap.tcp.core_c and fastcap._ffi",
              DeprecationWarning, stacklevel=2)

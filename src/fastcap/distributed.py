"""`fastcap.distributed` is :mod:`fastcap.run.distributed` under the name the documentation uses."""

import sys

from .run import distributed as _module

sys.modules[__name__] = _module

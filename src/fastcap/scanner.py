"""`fastcap.scanner` is :mod:`fastcap.run.scanner` under the name the documentation uses."""

import sys

from .run import scanner as _module

sys.modules[__name__] = _module

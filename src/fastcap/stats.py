"""`fastcap.stats` is :mod:`fastcap.select.stats` under the name the documentation uses."""

import sys

from .select import stats as _module

sys.modules[__name__] = _module

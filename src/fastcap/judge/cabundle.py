"""Where Mozilla's roots are on this machine: certifi's ``cacert.pem``, found without importing
X.509 code, so that a scan can name the bundle (and fail early when it cannot be read) before
its first certificate needs the store."""

from __future__ import annotations

import importlib.util
import os

__all__ = ["certifi_bundle"]


def certifi_bundle() -> str:
    """certifi's cacert.pem.  Found beside the installed package when it is a plain
    directory: importing certifi pulls in importlib.resources, a noticeable share of the
    start-up of a scan."""
    spec = importlib.util.find_spec("certifi")
    for d in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(d, "cacert.pem")
        if os.path.isfile(path):
            return path
    import certifi  # zipped or otherwise packed: let certifi extract it

    return certifi.where()

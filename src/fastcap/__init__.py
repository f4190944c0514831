"""fastcap: find SMTP STARTTLS handshakes in huge captures; explain client-certificate trouble."""

from importlib.metadata import PackageNotFoundError, version

from .capture import Capture, CaptureMeta
from .errors import CaptureError, CaptureWarning, FastcapError

try:
    __version__ = version("fastcap")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["Capture", "CaptureMeta", "CaptureError", "CaptureWarning", "FastcapError",
           "__version__"]

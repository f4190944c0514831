"""fastcap: find SMTP STARTTLS handshakes in huge captures; explain client-certificate trouble."""

from importlib.metadata import PackageNotFoundError, version

from .capture import Capture, CaptureMeta
from .errors import CaptureError, CaptureWarning, FastcapError

try:
    __version__ = version("fastcap")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["Capture", "CaptureMeta", "CaptureError", "CaptureWarning", "FastcapError", "scan",
           "__version__"]


def __getattr__(name: str):
    """`fastcap.scan` is imported on first use: it pulls in certificate verification, which
    `fastcap stats` and the frame-level API never need."""
    if name == "scan":
        from .scanner import scan

        return scan
    raise AttributeError(f"module 'fastcap' has no attribute {name!r}")

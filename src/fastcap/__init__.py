"""fastcap: find SMTP STARTTLS handshakes in huge captures; explain client-certificate trouble."""

from .errors import CaptureError, CaptureWarning, FastcapError

__all__ = ["Capture", "CaptureMeta", "CaptureError", "CaptureWarning", "FastcapError", "scan",
           "__version__"]


def __getattr__(name: str):
    """`fastcap.scan` is imported on first use: it pulls in certificate verification, which
    `fastcap stats` and the frame-level API never need.  `__version__` comes from this
    tree's own `_version` module, never from package metadata: that may be another tree's
    install, and reading it costs more start-up time than a small scan.  And `Capture`, with
    numpy behind it, so that the command line's --help and --version go without.  A submodule
    (`fastcap.scanner`, `fastcap.session`, ...) is imported when first named, so a program
    that only did `import fastcap` reaches it as an attribute, as README's examples do."""
    if name in ("Capture", "CaptureMeta"):
        from .read import capture

        return getattr(capture, name)
    if name == "scan":
        from .run.scanner import scan

        return scan
    if name == "__version__":
        from ._version import __version__

        return __version__
    if not name.startswith("_"):
        from importlib import import_module
        from importlib.util import find_spec

        if find_spec(f"{__name__}.{name}") is not None:
            return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fastcap' has no attribute {name!r}")


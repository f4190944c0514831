"""fastcap: find SMTP STARTTLS handshakes in huge captures; explain client-certificate trouble."""

from .errors import CaptureError, CaptureWarning, FastcapError

__all__ = ["Capture", "CaptureMeta", "CaptureError", "CaptureWarning", "FastcapError", "scan",
           "__version__"]


def __getattr__(name: str):
    """`fastcap.scan` is imported on first use: it pulls in certificate verification, which
    `fastcap stats` and the frame-level API never need.  `__version__` too: reading package
    metadata costs more start-up time than the rest of a small scan.  And `Capture`, with
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
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("fastcap")
        except PackageNotFoundError:  # running from a source tree without an install
            return _declared_version()
    if not name.startswith("_"):
        from importlib import import_module
        from importlib.util import find_spec

        if find_spec(f"{__name__}.{name}") is not None:
            return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fastcap' has no attribute {name!r}")


def _declared_version() -> str:
    """The version pyproject.toml declares, for a source tree run without an install (no
    package metadata): the one place the version is written.  "0.0.0" when there is none."""
    import tomllib
    from pathlib import Path

    try:
        project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                                .read_text(encoding="utf-8"))["project"]
    except (OSError, ValueError, KeyError):
        return "0.0.0"
    return project["version"] if project.get("name") == "fastcap" else "0.0.0"

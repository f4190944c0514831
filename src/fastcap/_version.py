"""The one place fastcap's version is written.  pyproject.toml reads it from here at build
time (`[tool.setuptools.dynamic]`), so an install's metadata and the running code agree, and
code run from a source tree reports its own version even when another tree is installed."""

__version__ = "0.1.0"

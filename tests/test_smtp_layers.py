"""fastcap.proto.smtp's layout: one layer per module, each importing only the ones before it,
and the package reaching nothing beyond fastcap.proto and the base modules (its contract)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fastcap.proto import smtp
from fastcap.proto.smtp import dialogue, events, machine, parse
from tests.test_layering import BASE

PACKAGE = "fastcap.proto.smtp"
DIR = Path(smtp.__file__).resolve().parent
LAYERS = ["events", "machine", "dialogue", "parse"]  # each may import only those before it


def _imported(path: Path) -> set[str]:
    """Dotted fastcap names a module of the package imports (modules, or names inside them)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "fastcap"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = PACKAGE.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "fastcap":
                out |= {mod} if node.module else {f"{mod}.{a.name}" for a in node.names}
    return out


def test_every_module_is_a_layer():
    assert sorted(p.stem for p in DIR.glob("*.py")) == sorted([*LAYERS, "__init__"])


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_earlier_layers(layer):
    inner = {
        name.split(".")[3] for name in _imported(DIR / f"{layer}.py")
        if name.startswith(PACKAGE + ".")
    }
    assert inner <= set(LAYERS[: LAYERS.index(layer)]), inner


def test_package_reaches_only_proto_and_base_modules():
    outside = sorted(
        name for path in DIR.glob("*.py") for name in _imported(path)
        if name.split(".")[1] != "proto" and name.split(".")[1] not in BASE
    )
    assert not outside
    assert "fastcap.pickling" in _imported(DIR / "dialogue.py")  # the walk sees them


def test_reexports_are_the_defining_objects():
    """The package and the old flat name hand out the objects the layers define."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastcap import smtp as old

    assert old is smtp
    for module in (events, machine, dialogue, parse):
        for name, value in vars(module).items():
            if name in vars(smtp) and not name.startswith("__"):
                assert vars(smtp)[name] is value, (module.__name__, name)
    assert smtp.SmtpDialogue.__module__ == dialogue.__name__
    assert smtp.EXO_SUFFIX is events.EXO_SUFFIX and smtp.MAX_LINE is machine.MAX_LINE
    assert set(smtp.__all__) <= set(vars(smtp))

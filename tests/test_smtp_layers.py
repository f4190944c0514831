"""fastcap.proto.smtp's layout: one layer per module, each importing only the ones before it,
and the package reaching nothing beyond fastcap.proto and the base modules (its contract)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastcap.proto import smtp
from fastcap.proto.smtp import dialogue, events, machine, parse
from tests.test_layering import BASE, import_graph, package_sources

PACKAGE = "fastcap.proto.smtp"
DIR = Path(smtp.__file__).resolve().parent
LAYERS = ["tunnel", "events", "machine", "dialogue", "parse"]  # each imports only those before


def _edges() -> dict[str, set[str]]:
    """The package's modules -> the fastcap modules each imports (test_layering's reading)."""
    return {m: t for m, t in import_graph(package_sources()).items()
            if m.startswith(PACKAGE + ".")}


def test_every_module_is_a_layer():
    assert sorted(p.stem for p in DIR.glob("*.py")) == sorted([*LAYERS, "__init__"])


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_earlier_layers(layer):
    inner = {t.split(".")[3] for t in _edges()[f"{PACKAGE}.{layer}"]
             if t.startswith(PACKAGE + ".")}
    assert inner <= set(LAYERS[: LAYERS.index(layer)]), inner


def test_package_reaches_only_proto_and_base_modules():
    outside = sorted(t for targets in _edges().values() for t in targets
                     if t.split(".")[1] != "proto" and t.split(".")[1] not in BASE)
    assert not outside
    assert "fastcap.pickling" in _edges()[f"{PACKAGE}.dialogue"]  # the walk sees them


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

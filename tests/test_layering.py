"""The import graph of src/fastcap, read from the source: every import counts, at module
level, inside a function or under TYPE_CHECKING, since any of them can close a cycle.

Guards the re-layering: no import cycle, and a single module that loads the C extension."""

from __future__ import annotations

import ast
from pathlib import Path

import fastcap

PKG = "fastcap"
ROOT = Path(fastcap.__file__).resolve().parent
NATIVE_LOADERS = {"fastcap._ffi"}  # the only modules allowed to import fastcap._native


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement may refer to (a module or a name inside one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module if is_pkg else module.rpartition(".")[0]
    if node.level:
        parts = base.split(".")
        base = ".".join(parts[: len(parts) - (node.level - 1)])
        mod = f"{base}.{node.module}" if node.module else base
    else:
        mod = node.module or ""
    return [mod, *(f"{mod}.{a.name}" for a in node.names)]


def import_graph(sources: dict[str, tuple[str, bool]], pkg: str = PKG) -> dict[str, set[str]]:
    """module -> modules of `pkg` it imports; `sources` maps module -> (text, is_package).
    Names inside a module resolve to the module; the package itself is not an edge."""
    edges: dict[str, set[str]] = {m: set() for m in sources}
    for m, (text, is_pkg) in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if (isinstance(node, ast.ImportFrom) and node.level == 0
                    and (node.module or "").split(".")[0] != pkg):
                continue
            for t in _targets(m, is_pkg, node):
                while t and t not in sources:
                    t = t.rpartition(".")[0]
                if t and t != m and t != pkg and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def import_targets(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> every dotted name its imports may refer to (modules or not), each source
    parsed once."""
    out: dict[str, set[str]] = {}
    for m, (text, is_pkg) in sources.items():
        out[m] = {t for node in ast.walk(ast.parse(text))
                  if isinstance(node, (ast.Import, ast.ImportFrom))
                  for t in _targets(m, is_pkg, node)}
    return out


def imported_names(sources: dict[str, tuple[str, bool]], target: str,
                   targets: dict[str, set[str]] | None = None) -> set[str]:
    """Modules whose source imports `target` (absolutely or relatively), modules or not;
    `targets` is import_targets(sources), when the caller asks about many names."""
    targets = import_targets(sources) if targets is None else targets
    return {m for m, names in targets.items() if target in names}


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: set[frozenset[str]] = set()
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.add(frozenset(comp))
    return out


def package_sources(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    return {_module_name(p, root): (p.read_text(), p.name == "__init__.py")
            for p in sorted(root.rglob("*.py"))}


def test_graph_sees_function_level_and_type_checking_imports():
    """A cycle closed only by a lazy or typing-only import is still a cycle."""
    src = {
        "fastcap": ("", True),
        "fastcap.a": ("def f():\n    from .b import g\n", False),
        "fastcap.b": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from fastcap.c import C\n", False),
        "fastcap.c": ("import fastcap.a\nimport os\nfrom collections import abc\n", False),
        "fastcap.d": ("from . import a, c\n", False),
        "fastcap.p": ("", True),
        "fastcap.p.q": ("from .. import d\nfrom . import r\n", False),
        "fastcap.p.r": ("from ..a import f\n", False),
    }
    edges = import_graph(src)
    assert edges["fastcap.a"] == {"fastcap.b"}
    assert edges["fastcap.b"] == {"fastcap.c"}
    assert edges["fastcap.c"] == {"fastcap.a"}
    assert edges["fastcap.d"] == {"fastcap.a", "fastcap.c"}
    assert edges["fastcap.p.q"] == {"fastcap.d", "fastcap.p.r"}
    assert edges["fastcap.p.r"] == {"fastcap.a"}
    assert cycles(edges) == {frozenset({"fastcap.a", "fastcap.b", "fastcap.c"})}
    assert imported_names(src, "fastcap.a") == {"fastcap.c", "fastcap.d", "fastcap.p.r"}


# The pipeline, in order: a module may import only from stages before its own (and, inside its
# own stage, from its siblings; test_no_import_cycle keeps those one-way too).
STAGES = ["base", "read", "select", "tcp", "proto", "session", "evidence", "judge", "run", "out",
          "top"]
BASE = {"errors", "options", "pickling", "identity", "_ffi", "_native", "verdict", "_version"}
TOP = {"cli", "__main__"}  # fastcap/__init__ and the old module names (SHIMS) rank here too
# Old flat module names that stay importable; each is the moved module itself (or, for native
# and stats, whose contents now live in two stages, a list of re-exports) and nothing inside the
# package may use them.
SHIMS = {
    "capture", "crosssession", "decode", "diagnose", "distributed", "flows", "follow", "frames",
    "inputs", "issuer_evidence", "ja", "judging", "linktypes", "midstart", "native", "parallel",
    "pcap", "pcapng", "ranges", "rawconn", "reasm_native", "reassembly", "report", "resync",
    "scanner", "selection", "smtp", "stats", "stream", "streamed", "textsafe", "tls", "tlsconst",
    "walkstatus", "x509check", "x509names", "x509path", "x509profile",
}


def stage_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts[0] in TOP or parts[0] in SHIMS:
        return "top"
    if parts[0] in BASE:
        return "base"
    assert parts[0] in STAGES, f"{module} belongs to no stage"
    return parts[0]


def test_every_module_belongs_to_a_stage():
    for m in package_sources():
        stage_of(m)


def test_stages_import_only_earlier_stages():
    edges = import_graph(package_sources())
    bad = []
    for m, targets in edges.items():
        rank = STAGES.index(stage_of(m))
        for t in targets:
            t_rank = STAGES.index(stage_of(t))
            if t_rank > rank:
                bad.append(f"{m} -> {t}")
    assert not bad, bad


def test_nothing_inside_the_package_uses_an_old_module_name():
    sources = package_sources()
    targets = import_targets(sources)
    users = set()
    for shim in SHIMS:
        users |= {m for m in imported_names(sources, f"{PKG}.{shim}", targets)
                  if m.split(".")[1:2] != [shim]}
    assert not users, sorted(users)


def test_old_module_names_are_the_moved_modules():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for shim in sorted(SHIMS - {"native", "stats"}):
            old = importlib.import_module(f"{PKG}.{shim}")
            # fastcap.<stage>.<name>, or deeper in a stage package (fastcap.proto.tls.ja)
            assert old.__name__.split(".")[1] in STAGES, (shim, old.__name__)


def test_the_graph_covers_the_whole_package():
    edges = import_graph(package_sources())
    assert {"fastcap", "fastcap.run.scanner", "fastcap.session", "fastcap.cli"} <= edges.keys()
    assert "fastcap.run.scanner" in edges["fastcap.cli"]  # cli imports scanner inside functions


def test_no_import_cycle():
    found = cycles(import_graph(package_sources()))
    assert not found, sorted(map(sorted, found))


def test_only_the_native_loader_imports_the_c_extension():
    assert imported_names(package_sources(), "fastcap._native") == NATIVE_LOADERS

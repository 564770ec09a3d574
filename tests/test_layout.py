"""The layout's rules, checked on the source: dependencies go one way (a package imports only
packages below it in LAYERS, and hdl nothing of golden_model), and no module of a package
imports another in a circle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The packages, lowest first: each may import only those before it (and itself).
LAYERS = ("common", "golden_model", "hdl", "host", "sim", "explore", "sparsemac")
#: Pairs that the order alone would allow but the layout forbids.
FORBIDDEN = {("hdl", "golden_model")}


def module_name(root, path):
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports(root, path):
    """``(line, module)`` of every import in ``path``, relative ones made absolute (for
    ``from . import x``, the module ``package.x``)."""
    name = module_name(root, path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1]
            if node.module:
                out.append((node.lineno, ".".join(base + [node.module])))
            else:
                out += [(node.lineno, ".".join(base + [a.name])) for a in node.names]
    return out


def violations(root, package):
    """Imports in ``package`` of a package it must not depend on."""
    allowed = set(LAYERS[:LAYERS.index(package) + 1]) - {b for a, b in FORBIDDEN if a == package}
    return [f"{path.relative_to(root)}:{line} imports {module}"
            for path in sorted((root / package).rglob("*.py"))
            for line, module in imports(root, path)
            if module.split(".")[0] in LAYERS and module.split(".")[0] not in allowed]


def cycle(root, package):
    """An import circle between modules of ``package`` (not through its ``__init__``, which
    may re-export its modules), or None."""
    paths = {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    graph = {m: {i for _, i in imports(root, p) if i in paths and i not in (m, package)}
             for m, p in paths.items() if m != package}
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, route = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return route + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, route + [nxt]))
    return None


@pytest.mark.parametrize("package", LAYERS)
def test_dependencies_go_one_way(package):
    wrong = violations(ROOT, package)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", LAYERS)
def test_no_import_circle_inside_a_package(package):
    found = cycle(ROOT, package)
    assert found is None, " -> ".join(found)


def test_the_checks_can_fail(tmp_path):
    """On a small tree: hdl importing golden_model, host importing sim, and two modules of
    sparsemac importing each other (relative imports included) are all reported."""
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "hdl" / "a.py").write_text("import numpy\nfrom golden_model import quant\n")
    (tmp_path / "host" / "b.py").write_text("from hdl import a\nfrom sim.tb import TB\n")
    (tmp_path / "sparsemac" / "cli.py").write_text("from .demo import run\n")
    (tmp_path / "sparsemac" / "demo.py").write_text("from . import cli\n")
    assert violations(tmp_path, "hdl") == ["hdl/a.py:2 imports golden_model"]
    assert violations(tmp_path, "host") == ["host/b.py:2 imports sim.tb"]
    assert violations(tmp_path, "sparsemac") == []
    assert cycle(tmp_path, "sparsemac") in (["sparsemac.cli", "sparsemac.demo", "sparsemac.cli"],
                                            ["sparsemac.demo", "sparsemac.cli", "sparsemac.demo"])
    assert cycle(tmp_path, "host") is None

"""The package reads as layers: no module imports another that imports it back, counting imports inside functions
(a lazy import hides a circle from Python, not from the reader)."""
from __future__ import annotations

import ast
from pathlib import Path

import nnunet_25d

PACKAGE = Path(nnunet_25d.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nnunet_25d":
                for alias in node.names:  # `from nnunet_25d import cli` imports the module nnunet_25d.cli
                    submodule = f"{node.module}.{alias.name}"
                    imported.add(submodule if submodule in modules else node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in modules}
        graph[name] = imported - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each circle as a path that returns to its start (depth-first, one per back edge)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                found.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_lazy_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert "nnunet_25d.benchmark.cases" in import_graph()["nnunet_25d.benchmark.matrix"]  # read from the files


# The package's layers, lowest first: a module imports only from layers below its own, or from its own package.
LAYERS = (("nnunet_25d",), ("errors",), ("files", "geometry", "datasets"), ("planning",), ("architectures",), ("losses",),
          ("deploy",), ("inference",), ("trainers",), ("export",), ("predict",), ("roi",), ("report",), ("benchmark",),
          ("view_fusion",), ("cli",))


def package_of(module: str) -> str:
    """``nnunet_25d.geometry.slab`` -> ``geometry``; the package's ``__init__`` -> ``nnunet_25d``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(module: str) -> int:
    package = package_of(module)
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) for every import that does not run down the layers."""
    return sorted((module, imported) for module, imports in graph.items() for imported in imports
                  if package_of(module) != package_of(imported) and layer_of(imported) >= layer_of(module))


def test_every_package_has_a_layer():
    packages = {package_of(module) for module in import_graph()}
    assert packages == {package for layer in LAYERS for package in layer}


def test_imports_run_down_the_layers_only():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_import_back_up():
    graph = {"nnunet_25d.geometry.slab": {"nnunet_25d.trainers.registry"},
             "nnunet_25d.geometry.views": {"nnunet_25d.datasets.synthetic"},
             "nnunet_25d.trainers.registry": {"nnunet_25d.geometry.slab", "nnunet_25d.trainers.seeds"}}
    assert upward_imports(graph) == [("nnunet_25d.geometry.slab", "nnunet_25d.trainers.registry"),
                                     ("nnunet_25d.geometry.views", "nnunet_25d.datasets.synthetic")]

"""The ml package's three layers: models, then lists, then selection. Each module may
import only its own layer and those above it, so a model never builds a list or scores
one, and the list builder never tunes or evaluates."""

import ast
from pathlib import Path

import pytest

import cinematch_assets.ml

ML = Path(cinematch_assets.ml.__file__).parent
LAYERS = ("models", "lists", "selection")


def _imports(path: Path) -> set[str]:
    """Every cinematch_assets.ml.<layer> a module imports, at any depth (TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["cinematch_assets", "ml"] and len(parts) > 2 and parts[2] in LAYERS:
                found.add(parts[2])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_above_it(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    modules = sorted((ML / layer).glob("*.py"))
    assert modules, f"ml/{layer} has no modules"
    wrong = {
        path.name: sorted(_imports(path) - allowed) for path in modules if _imports(path) - allowed
    }
    assert not wrong, f"ml/{layer} imports a layer below it: {wrong}"


def test_every_ml_module_is_in_a_layer():
    loose = {path.name for path in ML.glob("*.py")} - {"__init__.py", "arrays.py"}
    assert not loose, f"modules outside the layers: {sorted(loose)}"
    assert not _imports(ML / "arrays.py"), "ml/arrays.py is below every layer"

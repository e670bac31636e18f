"""Layers outside `ml/` (whose own three are `ml/test_layers.py`'s): the pipeline never
imports the front ends in `app/`, the serving core they share never imports a framework
(Dagster, Spark, FastAPI, Streamlit) or the pipeline's assets, and storage (files and
tables) never imports the recommender."""

import ast
from pathlib import Path

import cinematch_assets

PACKAGE = Path(cinematch_assets.__file__).parent
SERVING = PACKAGE / "serving"
FRAMEWORKS = ("dagster", "pyspark", "fastapi", "starlette", "streamlit", "uvicorn")
PIPELINE = ("cinematch_assets.assets", "cinematch_assets.resources", "cinematch_assets.ops")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (TYPE_CHECKING and functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def offenders(files: list[Path], banned: tuple[str, ...]) -> dict[str, list[str]]:
    wrong = {path: sorted(n for n in imported(path) if within(n, banned)) for path in files}
    return {str(path.relative_to(path.parents[1])): names for path, names in wrong.items() if names}


def test_the_pipeline_never_imports_the_front_ends():
    assert not offenders(sorted(PACKAGE.rglob("*.py")), ("app",))


def test_the_serving_core_imports_no_framework_and_no_asset():
    modules = sorted(SERVING.glob("*.py"))
    assert len(modules) > 1
    assert not offenders(modules, FRAMEWORKS + PIPELINE)


def test_storage_never_imports_the_recommender():
    modules = sorted((PACKAGE / "storage").glob("*.py"))
    assert not offenders(modules, ("cinematch_assets.ml", "cinematch_assets.serving"))


def test_a_layer_violation_is_found(tmp_path):
    module = tmp_path / "serving" / "bad.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from app.api import create_app\n    import pyspark.sql\n")
    assert offenders([module], ("app",)) == {"serving/bad.py": ["app.api"]}
    assert offenders([module], FRAMEWORKS) == {"serving/bad.py": ["pyspark.sql"]}

"""The package's import graph points one way: cells and data at the bottom, the run at the top, no cycles.

Each subpackage may import only the layers below it (README, "Code map"). Read from the source with ast,
so a lazy import inside a function counts as much as one at the top of a module.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rnnlab"
# Layer of each subpackage: a module may import its own subpackage and any of a lower layer.
LAYERS = {"cells": 0, "data": 0, "model": 1, "diagnostics": 2, "training": 3, "explain": 4, "bench": 4, "report": 4}


def imported_subpackages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnlab."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("rnnlab."))
    return names


def test_every_module_lives_in_a_subpackage():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules outside a subpackage: {loose}; put each in the folder of its concern"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


@pytest.mark.parametrize("subpackage", sorted(LAYERS))
def test_imports_point_down(subpackage):
    upward = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        for target in imported_subpackages(path):
            if target != subpackage and LAYERS.get(target, 99) >= LAYERS[subpackage]:
                upward.append(f"{path.relative_to(PACKAGE)} imports rnnlab.{target}")
    assert not upward, upward

"""Imports go down only: every module of the package is read (imports inside functions too), and each layer may
import its own modules and the layers below it, never a peer or one above. Textual belongs to the UI alone."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "tui" / "amqp_lab"

# Lowest first; a layer may import what stands before it, and not the layers on its own line.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "masking", "parent_link", "event_loop"),
    ("amqp",),
    ("config", "scenario"),
    ("broker", "embedded"),
    ("engine",),
    ("workshop", "compare"),
    ("headless", "ui", "serving"),
    ("arguments",),
    ("cli",),
    ("__main__",),
]
RANK = {layer: rank for rank, line in enumerate(LAYERS) for layer in line}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(("amqp_lab", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        found[dotted] = path
    return found


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_layer_is_placed() -> None:
    assert sorted({layer_of(m) for m in modules()} - set(RANK)) == []


def test_imports_go_down_only() -> None:
    wrong = []
    for module, path in sorted(modules().items()):
        here = layer_of(module)
        for name in sorted(imports(path)):
            if name.split(".")[0] == "textual" and here != "ui":
                wrong.append(f"{module} imports {name}: Textual belongs to the UI")
            if not name.startswith("amqp_lab."):
                continue
            there = layer_of(name)
            if there != here and RANK[there] >= RANK[here]:
                wrong.append(f"{module} imports {name}: {there} is not below {here}")
    assert wrong == []

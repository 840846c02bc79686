"""The package's shape: only ``drivers/`` names a dialect, and the package root stays small.

Every dialect difference lives in its driver, behind the ``Connection`` protocol, the
``Capabilities`` record and the per-backend record in ``drivers/backends.py``; generic code that
says ``if dialect == "mysql"`` is how differences leak out of the drivers, so a dialect name as a
string constant anywhere else fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import memoria_stream

PACKAGE = Path(memoria_stream.__file__).resolve().parent
DRIVERS = PACKAGE / "drivers"
DIALECT_NAMES = {"sqlite", "postgresql", "postgres", "mysql", "mariadb"}
MAX_ROOT_MODULES = 6


def _modules_outside_drivers() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if DRIVERS not in p.parents)


def dialect_literals(source: str) -> list[tuple[int, str]]:
    """(line, value) of every whole string constant in ``source`` that is a dialect name (not the
    pieces of an f-string, and not words inside longer text such as comments or messages)."""
    tree = ast.parse(source)
    pieces = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in pieces
                  and node.value.strip().lower() in DIALECT_NAMES)


def test_the_check_sees_a_dialect_name() -> None:
    found = dialect_literals('if caps.dialect == "sqlite":\n    x = {"MySQL": 1}\ny = f"{a}postgres"\n')
    assert found == [(1, "sqlite"), (2, "MySQL")]


def test_the_scan_covers_the_package() -> None:
    scanned = {p.relative_to(PACKAGE).parts[0] for p in _modules_outside_drivers()}
    assert {"api", "backup", "cli", "codecs", "migrations", "model", "transfer", "errors.py"} <= scanned


def test_only_drivers_name_a_dialect() -> None:
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r}"
                 for path in _modules_outside_drivers()
                 for line, value in dialect_literals(path.read_text(encoding="utf-8"))]
    assert not offenders, ("dialect names outside memoria_stream/drivers/ (put the difference in the driver, "
                           "its Capabilities or drivers/backends.py):\n" + "\n".join(offenders))


def test_few_modules_at_the_package_root() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= MAX_ROOT_MODULES, f"{len(loose)} modules at memoria_stream/ root: {loose}"


def test_no_module_imports_itself_back() -> None:
    """No import cycle between any two modules of the package (function-level imports included)."""
    import grimp

    graph = grimp.build_graph("memoria_stream")
    cycles = sorted({tuple(sorted((module, dep))) for module in graph.modules
                     for dep in graph.find_modules_directly_imported_by(module)
                     if graph.chain_exists(importer=dep, imported=module)})
    assert not cycles, cycles

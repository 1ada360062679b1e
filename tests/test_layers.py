"""The import layers hold: read every module's imports with ``ast`` and check who imports whom.

* ``ringbuf/`` (the ring library) never imports ``services``.
* A service package (``services/<x>/``) imports only itself and the shared packages
  (``services.common``, ``services.formats``): never a sibling service, never ``services.demo``.
  The demo is an application and may import any of them.
* Services take ring-library names only from ``ringbuf`` and ``ringbuf.errors`` (the public face).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("common", "formats")  # services packages every service may import
APPLICATIONS = ("demo",)  # may import every service package; nobody imports them
RING_PUBLIC = ("ringbuf", "ringbuf.errors")


@dataclass(frozen=True)
class Import:
    """One imported module, where it is imported and from which module."""

    module: str  # absolute dotted name, e.g. "services.common.config"
    importer: str  # dotted name of the importing module
    where: str  # "path:line"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str, root: Path = ROOT) -> bool:
    """Whether ``dotted`` names a module or package of this tree."""
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every module ``path`` imports (relative imports resolved), including nested imports."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(alias.name, name, where) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(Import(target, name, where))
            # "from services import ingest" imports services.ingest: keep the names that
            # are modules in this tree (not "from ringbuf import RingLayout")
            found += [Import(f"{target}.{alias.name}", name, where) for alias in node.names
                      if is_module(f"{target}.{alias.name}", root)]
    return found


def all_imports(top: str) -> list[Import]:
    return [imp for path in sorted((ROOT / top).rglob("*.py")) for imp in imports_of(path)]


def package_of(module: str) -> str | None:
    """``services.ingest.main`` -> ``ingest``; None outside a services package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def layer_violations(imports: list[Import]) -> list[str]:
    """The import-layer rules broken by ``imports`` (one line each, naming file and line)."""
    problems = []
    for imp in imports:
        top = imp.module.split(".")[0]
        if imp.importer.split(".")[0] == "ringbuf":
            if top == "services":
                problems.append(f"{imp.where}: ringbuf imports {imp.module}")
            continue
        own = package_of(imp.importer)
        other = package_of(imp.module)
        if own is None or other is None or own == other or own in APPLICATIONS:
            continue
        if other in APPLICATIONS:
            problems.append(f"{imp.where}: services.{own} imports the application {imp.module}")
        elif other not in SHARED:
            problems.append(f"{imp.where}: services.{own} imports its sibling {imp.module}")
        elif own in SHARED and other not in SHARED:
            problems.append(f"{imp.where}: shared services.{own} imports {imp.module}")
    return problems


def private_ring_imports(imports: list[Import]) -> list[str]:
    """Imports of ring-library modules other than the public ``ringbuf``/``ringbuf.errors``."""
    return [f"{imp.where}: {imp.importer} imports {imp.module}" for imp in imports
            if imp.module.split(".")[0] == "ringbuf" and imp.module not in RING_PUBLIC]


def test_the_checker_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    # the checker itself: relative imports resolve, and every rule fires on a violation
    fake = [
        Import("services.demo", "services.ingest.main", "a:1"),
        Import("services.stat.compute", "services.ingest.main", "b:2"),
        Import("services.common.config", "services.ingest.main", "c:3"),
        Import("services.formats.pst", "services.stat.compute", "d:4"),
        Import("services.ingest", "services.demo.vis_flow", "e:5"),
        Import("services.common", "ringbuf.cli", "f:6"),
        Import("ringbuf.header", "services.stat.compute", "g:7"),
        Import("ringbuf.errors", "services.stat.compute", "h:8"),
    ]
    assert layer_violations(fake) == [
        "a:1: services.ingest imports the application services.demo",
        "b:2: services.ingest imports its sibling services.stat.compute",
        "f:6: ringbuf imports services.common",
    ]
    assert private_ring_imports(fake) == ["g:7: services.stat.compute imports ringbuf.header"]
    module = tmp_path / "services" / "ingest" / "probe.py"
    module.parent.mkdir(parents=True)
    (tmp_path / "services" / "stat").mkdir()
    (tmp_path / "services" / "stat" / "compute.py").write_text("")
    (module.parent / "sink.py").write_text("")
    module.write_text("from ..stat import compute\nfrom . import sink\n\n"
                      "def f():\n    import services.demo.vis_flow\n")
    found = {imp.module for imp in imports_of(module, tmp_path)}
    assert found == {"services.stat", "services.stat.compute", "services.ingest",
                     "services.ingest.sink", "services.demo.vis_flow"}


def test_ringbuf_never_imports_services() -> None:
    imports = all_imports("ringbuf")
    assert len(imports) > 50  # the walk found the library
    assert layer_violations(imports) == []


def test_services_import_only_themselves_and_the_shared_packages() -> None:
    imports = all_imports("services")
    assert {package_of(imp.importer) for imp in imports} >= {"common", "ingest", "stat",
                                                             "mswrite"}
    assert layer_violations(imports) == []


def test_the_framework_and_the_demo_take_ring_names_from_the_public_face() -> None:
    imports = [imp for imp in all_imports("services")
               if package_of(imp.importer) in ("common", "demo")]
    assert any(imp.module == "ringbuf" for imp in imports)
    assert private_ring_imports(imports) == []


def test_services_take_ring_names_only_from_the_public_face() -> None:
    assert private_ring_imports(all_imports("services")) == []

"""The dependency rule, checked on the source (every import statement that can run, at module level or inside a
function; ``if TYPE_CHECKING:`` blocks are annotations only):

* nothing in ``lightning_hash`` imports ``datamodules``, except the runner (``lightning_hash/experiment.py``);
* no import cycle between the modules of the two packages;
* no method file (a module of ``lightning_hash/methods/`` that registers a method) imports another module of
  ``lightning_hash/methods/`` besides the registry: shared pieces live in shared modules;
* no module reads a private attribute of a DataModule (``dm._x``, ``datamodule._x``) outside ``datamodules``.
"""
import ast
import re
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lightning_hash", "datamodules")
RUNNER = "lightning_hash.experiment"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The project modules ``name`` imports (``from a.b import c`` counts as ``a.b.c`` when that is a module)."""
    is_package = path.name == "__init__.py"
    out: Set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):   # ``if TYPE_CHECKING:`` imports never run: not dependencies
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_lightning_hash_imports_datamodules_only_in_the_runner():
    offenders = sorted(f"{m} -> {t}" for m, targets in _graph().items() if m.startswith("lightning_hash")
                       and m != RUNNER for t in targets if t.split(".")[0] == "datamodules")
    assert not offenders, offenders


def _cycle(graph: Dict[str, Set[str]]):
    """One import cycle as a list of modules, or None (submodule -> its own package is not an edge: importing
    ``a.b`` runs ``a/__init__`` first, which is not a cycle of ``a.b``'s making)."""
    state: Dict[str, int] = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _without_package_reexports(graph: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    """Edges from a package's ``__init__`` to its own submodules are its public face (re-exports), not
    dependencies of those submodules; they are dropped so that ``pkg.x -> pkg -> pkg.x`` is not a cycle."""
    return {m: {t for t in ts if not (t.startswith(m + ".") and (ROOT / Path(*m.split("."))).is_dir())}
            for m, ts in graph.items()}


def test_no_import_cycles():
    graph = _graph()
    # a module importing a package (``import datamodules``) depends on that package's __init__ and, through it,
    # on what the package re-exports: keep those edges, drop only __init__ -> own submodule
    cycle = _cycle(_without_package_reexports(graph))
    assert cycle is None, " -> ".join(cycle)


def _method_files() -> Set[str]:
    out = set()
    for name, path in _modules().items():
        if name.startswith("lightning_hash.methods.") and re.search(r"^@register\(", path.read_text(), re.M):
            out.add(name)
    return out


def test_no_method_file_imports_another_method_module():
    graph = _graph()
    methods = _method_files()
    assert {"lightning_hash.methods.djsrh", "lightning_hash.methods.tvdb"} <= methods
    offenders = sorted(f"{m} -> {t}" for m in methods for t in graph[m]
                       if t.startswith("lightning_hash.methods.") and t != "lightning_hash.methods._registry")
    assert not offenders, offenders


def test_no_private_datamodule_attribute_is_read_outside_datamodules():
    pattern = re.compile(r"\b(dm|datamodule|data_module|self\.trainer\.datamodule)\._[a-z]\w*"
                         r"|getattr\(\s*(dm|datamodule|data_module)\s*,\s*[\"']_")
    offenders = [f"{p.relative_to(ROOT)}:{i + 1}: {line.strip()}"
                 for p in sorted((ROOT / "lightning_hash").rglob("*.py")) + sorted((ROOT / "experiments").rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
    assert not offenders, offenders


def test_the_walker_sees_imports_inside_functions_and_relative_imports(tmp_path):
    graph = _graph()
    assert "lightning_hash.contract" in graph["lightning_hash.methods.tvdb"]       # imported inside a method
    assert "datamodules.split" in graph["datamodules.protocols"]                    # from .split import Split
    assert "lightning_hash.nn.backbone" in graph["datamodules.readers.features"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert "lightning_hash.metrics._checks" not in graph["lightning_hash.metrics._products"]   # TYPE_CHECKING only


def test_tests_are_laid_out_like_the_packages():
    """``tests/<folder>/test_*.py`` tests the code in ``<folder>`` (a package or sub-package, or ``experiments``);
    only the repository-wide checks (this file, packaging) sit in ``tests/`` itself."""
    tests = ROOT / "tests"
    for path in sorted(tests.rglob("test_*.py")):
        folder = path.parent.relative_to(tests)
        if folder == Path("."):
            assert path.name in ("test_layout.py", "test_packaging.py"), f"{path}: move it beside the code it tests"
        else:
            assert (ROOT / folder).is_dir(), f"{path}: tests/{folder} names no folder of the repository"

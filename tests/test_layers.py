"""The house's rule: mlp_lib's layers (core < io < engines < study < apps) import only
downwards, no module imports the package's __init__, no two modules import each other
(directly or round a longer loop), and no module reaches for another's private names.

The layers contract itself lives in pyproject.toml ([tool.importlinter]); `python3 tasks.py
lint` runs it too.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlp_lib"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, path.name == "__init__.py"


def _imports(name, path, is_package):
    """(imported module, imported names, line) for every import statement of a module,
    relative imports resolved."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, [a.name for a in node.names], node.lineno


def _lint_imports(cwd, env=None):
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_contract_is_kept():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


def test_the_contract_breaks_when_a_core_module_imports_an_app(tmp_path):
    """The check can fail: a copy of the package whose maths imports the command line."""
    shutil.copytree(PACKAGE, tmp_path / "mlp_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    functional = tmp_path / "mlp_lib" / "core" / "functional.py"
    functional.write_text(functional.read_text() + "\nfrom ..apps import cli  # noqa\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    out = _lint_imports(tmp_path, env)
    assert out.returncode != 0, out.stdout
    assert "BROKEN" in out.stdout
    assert "mlp_lib.core.functional -> mlp_lib.apps.cli" in out.stdout


def test_no_module_imports_the_package_init():
    """`from mlp_lib import MLP` inside the package would import every layer from any
    one of them; the public API is for users."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path, is_package in _modules()
        if name != "mlp_lib"
        for module, _, line in _imports(name, path, is_package)
        if module == "mlp_lib"
    ]
    assert not offenders, offenders


def test_no_two_modules_import_each_other():
    """No import circle, however long (Tarjan's strongly connected components)."""
    graph = {}
    for name, path, is_package in _modules():
        graph[name] = set()
        for module, names, _ in _imports(name, path, is_package):
            if not module or not module.startswith("mlp_lib"):
                continue
            graph[name].add(module)
            graph[name].update(f"{module}.{n}" for n in names)  # `from . import jobs`
    graph = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}
    # a package's __init__ may gather its own modules (engines/__init__ re-exports the
    # trainers); what is checked is that no module imports back up into a circle
    for package in graph:
        graph[package] = {t for t in graph[package] if not t.startswith(package + ".")}
    order, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    assert not circles, circles


def test_no_module_imports_another_modules_private_names():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {n} from {module}"
        for name, path, is_package in _modules()
        for module, names, line in _imports(name, path, is_package)
        if module and module.startswith("mlp_lib")
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not offenders, offenders

"""Layering rules: what may import what, and no import cycles.

Two views of the project's imports:

* the static graph, read from the source with :mod:`ast`: every ``import`` anywhere in a
  module counts (top level, inside functions, under ``TYPE_CHECKING``), so a cycle cannot
  hide behind a late import;
* what a fresh interpreter actually loads, checked in a few subprocesses.

Rooms (the "packages" of the package-level cycle check): ``config``, ``workers``, each
sub-package of ``sms_service`` (``sms_service.web``, ``sms_service.domain`` …), each
top-level module of ``sms_service`` (``sms_service.errors`` …), and ``sms_service``'s own
``__init__``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sms_service", "workers", "config")
BANNED_IN_DOMAIN = {"flask", "sqlalchemy", "sqlmodel", "twilio", "redis", "rq", "werkzeug"}
# Modules that do something when imported, by design: gunicorn entry points build an app,
# ``__main__`` modules run a command, Alembic's env.py runs migrations.
RUN_ON_IMPORT = ("wsgi", "__main__", "env")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> dict[str, Path]:
    """Every importable project module, by dotted name (migration scripts are not modules)."""
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "versions" in path.parts or ".venv" in path.parts:
                continue
            files[module_name(path)] = path
    return files


MODULES = project_files()


def resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (or its nearest project parent)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(project modules, top-level third-party names) that ``module`` imports anywhere."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    project: set[str] = set()
    other: set[str] = set()
    for node in ast.walk(tree):
        targets: Iterable[str]
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from a.b import c`` loads a.b.c when c is a module, else a.b.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]  # fmt: skip
        else:
            continue
        for target in targets:
            found = resolve(target)
            if found is not None:
                if found != module:
                    project.add(found)
            elif target.split(".")[0] not in PACKAGES:
                other.add(target.split(".")[0])
    return project, other


GRAPH = {m: imports_of(m)[0] for m in MODULES}


def _lazy_commands() -> set[str]:
    """The modules the command line imports by name when a group runs (cli/main.py's
    COMMANDS): edges of the graph all the same, so a cycle cannot hide behind them."""
    from sms_service.cli.main import COMMANDS

    return {name for module, _, extras in COMMANDS.values() for name in (module, *dict(extras))}


GRAPH["sms_service.cli.main"] |= _lazy_commands()
THIRD_PARTY = {m: imports_of(m)[1] for m in MODULES}


def room(module: str) -> str:
    """The room a module belongs to (see the module docstring)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "sms_service" else parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_project():
    assert len(MODULES) > 60
    assert "sms_service.cli.broadcasts" in GRAPH["sms_service.cli.main"]
    assert "sms_service.devtools.phone" in GRAPH["sms_service.devtools.webapp"]
    assert "flask" in THIRD_PARTY["sms_service.web.app"]


def test_no_module_import_cycles():
    assert cycles(GRAPH) == []


def test_no_package_import_cycles():
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        rooms.setdefault(room(module), set()).update(
            room(t) for t in targets if room(t) != room(module)
        )
    assert cycles(rooms) == []


def test_domain_imports_only_domain():
    leaks = {
        module: sorted(t for t in targets if not t.startswith("sms_service.domain"))
        for module, targets in GRAPH.items()
        if module.startswith("sms_service.domain")
    }
    assert {m: t for m, t in leaks.items() if t} == {}


def test_config_depends_on_the_pure_domain_only():
    # config validates zones and quiet hours with the domain's own parsers; anything more
    # would make the settings object depend on the code that reads it.
    assert {t for t in GRAPH["config"] if not t.startswith("sms_service.domain")} == set()


def test_only_cli_and_devtools_import_devtools():
    allowed = ("sms_service.cli", "sms_service.devtools")
    offenders = {
        module: sorted(t for t in targets if t.startswith("sms_service.devtools"))
        for module, targets in GRAPH.items()
        if not module.startswith(allowed)
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_workers_and_cli_never_import_flask_themselves():
    offenders = sorted(
        m
        for m, names in THIRD_PARTY.items()
        if m.startswith(("workers", "sms_service.cli")) and names & {"flask", "werkzeug"}
    )
    assert offenders == []


def _import_time_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Nodes that run when the module is imported (function bodies do not)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                defaults = child.args.defaults + [d for d in child.args.kw_defaults if d]
                stack.extend(defaults + getattr(child, "decorator_list", []))
                continue
            stack.append(child)


def _reads_environment(node: ast.AST) -> bool:
    def is_environ(value: ast.AST) -> bool:
        return ast.unparse(value) in ("os.environ", "environ")

    if isinstance(node, ast.Subscript) and is_environ(node.value):
        return True
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        return name in ("os.getenv", "getenv") or (
            isinstance(node.func, ast.Attribute) and is_environ(node.func.value)
        )
    return False


def test_nothing_reads_the_environment_at_import():
    offenders = sorted(
        f"{module}:{node.lineno}"
        for module, path in MODULES.items()
        for node in _import_time_nodes(ast.parse(path.read_text(encoding="utf-8")))
        if _reads_environment(node)
    )
    assert offenders == []


def loaded_after_import(modules: list[str]) -> set[str]:
    """Top-level names in ``sys.modules`` after a fresh interpreter imports ``modules``."""
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


@pytest.mark.slow  # a fresh interpreter
def test_domain_loads_no_framework():
    domain = [m for m in MODULES if m.startswith("sms_service.domain")]
    assert not loaded_after_import(domain) & BANNED_IN_DOMAIN


@pytest.mark.slow  # a fresh interpreter
def test_workers_and_cli_do_not_load_flask():
    modules = [
        m
        for m in MODULES
        if m.startswith(("workers", "sms_service.cli")) and not m.endswith(RUN_ON_IMPORT)
    ]
    assert "sms_service.cli.main" in modules and "workers.broadcast_worker" in modules
    assert "flask" not in loaded_after_import(modules)


# Each child is forked from an interpreter that has loaded only third-party libraries, so
# it starts with no project module loaded: an import that only works after another
# project module was imported first (a cycle, a missing import) fails here.
IMPORT_ALONE = r"""
import json, os, sys
for lib in sys.argv[1].split():
    try:
        __import__(lib)
    except ImportError:
        pass
results = {}
for module in sys.argv[2:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(module)
            message = ""
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        results[module] = pipe.read().decode()
    os.waitpid(pid, 0)
print(json.dumps(results))
"""


@pytest.mark.slow  # a fresh interpreter forking one child per module
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_every_module_imports_on_its_own():
    modules = sorted(m for m in MODULES if not m.endswith(RUN_ON_IMPORT))
    libs = sorted(set().union(*THIRD_PARTY.values()) - set(sys.builtin_module_names))
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, " ".join(libs), *modules],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    failures = {m: err for m, err in json.loads(out.stdout).items() if err}
    assert failures == {}

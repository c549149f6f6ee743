"""The package's layout: imports run one way, every module imports on its own, and shared words are defined once.

The layers, top to bottom (docs/layout.md)::

    entry points   cli, train, __main__
    tools          report, stylize: they read finished run folders and tickets
    engine         the IMP driver, methods, evaluation, loggers, launch, resume, config checks
    parts          models, pruning, data, tickets
    core           config schemas and errors, the conf/ folder, atomic writes

A module may import its own layer and the layers below it, never one above, and
no chain of imports may come back to where it started. Imports inside functions
count as much as those at the top of a module (they only hide a cycle until the
function runs); only ``if TYPE_CHECKING:`` imports, which never run, are left out.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from lottery_style.core.config import PARTS, PruningConfig
from lottery_style.engine.methods import METHODS
from lottery_style.tickets import paths

PACKAGE = Path(__file__).resolve().parent.parent / "lottery_style"
LAYERS = (  # top to bottom: (name, the modules and packages it holds)
    ("entry points", ("lottery_style.__main__", "lottery_style.cli", "lottery_style.train")),
    ("tools", ("lottery_style.tools",)),
    ("engine", ("lottery_style.engine",)),
    ("parts", ("lottery_style.models", "lottery_style.pruning", "lottery_style.data", "lottery_style.tickets")),
    ("core", ("lottery_style.core", "lottery_style")),
)


# ------------------------------------------------------------ the import graph
@cache
def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, however deep (functions, classes, try blocks), but those under ``if TYPE_CHECKING:``."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def imported(name: str) -> set[str]:
    """The package's modules that importing ``name`` runs: each imported module and the packages above it,
    but not ``name``'s own packages (they are already being imported when ``name`` runs)."""
    path, known = modules()[name], modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        targets |= {base} | {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    with_parents = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 2)}
    return {t for t in with_parents if t in known and t != name and not name.startswith(f"{t}.")}


@cache
def graph() -> dict[str, set[str]]:
    return {name: imported(name) for name in modules()}


def layer_of(name: str) -> int:
    """The index of the layer that holds ``name`` (0 is the top); the longest matching prefix decides."""
    matches = [(len(prefix), index) for index, (_, members) in enumerate(LAYERS) for prefix in members
               if name == prefix or name.startswith(f"{prefix}.")]  # fmt: skip
    assert matches, f"{name} is in no layer: add it to LAYERS (and to docs/layout.md)"
    return max(matches)[1]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_imports() -> None:
    """The check would miss the cycles the package used to hide if it read only the top of each module."""
    assert "lottery_style.tools.report" in graph()["lottery_style.cli"]  # imported inside cli.report()
    assert "lottery_style.train" in graph()["lottery_style.cli"]  # inside cli.main()
    assert "lottery_style.engine.lottery" not in graph()["lottery_style.engine.methods.base"]  # TYPE_CHECKING only


def test_the_layers_are_ordered_as_the_layout_page_draws_them() -> None:
    chain = ["lottery_style.cli", "lottery_style.tools.report", "lottery_style.engine.lottery",
             "lottery_style.tickets.paths", "lottery_style.core.config"]  # fmt: skip
    assert [layer_of(name) for name in chain] == list(range(len(LAYERS)))
    assert layer_of("lottery_style.models.components.vgg") == layer_of("lottery_style.data.images")  # one layer


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_imports_run_down_the_layers_only() -> None:
    upward = [f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for name, targets in graph().items() for target in sorted(targets) if layer_of(target) < layer_of(name)]  # fmt: skip
    assert upward == []


def test_the_layout_page_draws_every_package_and_entry_point() -> None:
    layout = (PACKAGE.parent / "docs/layout.md").read_text()
    packages = {path.parent.name + "/" for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE}
    entry = {path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    assert [name for name in sorted(packages | entry) if name not in layout] == []
    assert all(name in layout for name, _ in LAYERS)


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    names = [name for name in modules() if name != "lottery_style.__main__"]  # __main__ runs the CLI
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def architectures() -> list[str]:
    """The modules that register an architecture (``@register_model``)."""
    return [name for name, path in modules().items() if "@register_model(" in path.read_text() and name.startswith("lottery_style.models.")]


def test_the_logger_module_loads_no_architecture() -> None:
    """Loggers know runs and tickets, not models: importing them must not build the model zoo (or torch's half of it)."""
    assert len(architectures()) >= 6
    code = "import sys, lottery_style.engine.loggers\nprint('\\n'.join(m for m in sys.modules if m.startswith('lottery_style.models')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = result.stdout.split()
    assert not set(loaded) & set(architectures()), loaded
    assert loaded == []


# ----------------------------------------------------------- one definition
@cache
def source_trees() -> dict[str, ast.AST]:
    return {name: ast.parse(path.read_text()) for name, path in modules().items()}


def strings(node: ast.AST) -> list[str]:
    """The string constants a collection literal holds (a dict's keys included), f-strings' literal parts too."""
    items: list[ast.AST] = list(node.keys) if isinstance(node, ast.Dict) else list(getattr(node, "elts", []))  # type: ignore[arg-type]
    found = []
    for item in items:
        for part in item.values if isinstance(item, ast.JoinedStr) else [item]:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                found.append(part.value)
    return found


def collections_naming(trees: dict[str, ast.AST], words: set[str], pattern: re.Pattern[str]) -> list[str]:
    """``module:line`` of every tuple, list, set or dict literal holding two or more of ``words`` (as ``pattern``
    finds them in its strings)."""
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                hits = {m for s in strings(node) for m in pattern.findall(s) if m in words}
                if len(hits) >= 2:
                    found.append(f"{name}:{node.lineno} {sorted(hits)}")
    return found


def outside(defining_module: str) -> dict[str, ast.AST]:
    return {name: tree for name, tree in source_trees().items() if name != defining_module}


PART_WORDS = re.compile(r"(?<![a-z])(" + "|".join(PARTS) + r")(?![a-z])")  # encoder, sparsity_encoder, encoder.
OWN_METHODS = {name for name, strategy in METHODS.items() if strategy.__module__.startswith("lottery_style.")}
METHOD_NAMES = re.compile(r"^(" + "|".join(sorted(OWN_METHODS, key=len, reverse=True)) + r")$")


def test_the_parts_are_defined_once() -> None:
    """``core.config.Part``/``PARTS`` name the parts; a literal list of them elsewhere (``("encoder", "decoder")``,
    ``("sparsity_encoder", ...)``, ``("encoder.", ...)``) would be a second definition to keep in step."""
    assert collections_naming(outside("lottery_style.core.config"), set(PARTS), PART_WORDS) == []


def method_name_literals(trees: dict[str, ast.AST]) -> list[str]:
    """``module:line`` of every string constant (docstrings aside) that is a method's name."""
    found = []
    for name, tree in trees.items():
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in docstrings and node.value in OWN_METHODS:
                found.append(f"{name}:{node.lineno} {node.value!r}")
    return found


def test_the_methods_are_defined_once() -> None:
    """A method names itself once, in its own module's ``register_method(...)``: no collection literal anywhere
    lists two methods (a second list to keep in step), and the core layer names none but the schema's default
    method, so a new method is one module of the engine (tests/test_extensions.py registers one from outside)."""
    assert len(OWN_METHODS) >= 13 and all(METHODS[name].name == name for name in OWN_METHODS)
    assert collections_naming(source_trees(), OWN_METHODS, METHOD_NAMES) == []
    core = {name: tree for name, tree in source_trees().items() if layer_of(name) == len(LAYERS) - 1}
    default = PruningConfig.__dataclass_fields__["method"].default
    assert default in OWN_METHODS
    assert [hit for hit in method_name_literals(core) if not hit.endswith(f" {default!r}")] == []
    assert len(method_name_literals(core)) == 1  # PruningConfig.method's default


def file_names() -> set[str]:
    """The file names :mod:`lottery_style.tickets.paths` defines (folders' names are too common a word to search)."""
    values = {value for key, value in vars(paths).items() if key.isupper() and isinstance(value, str)}
    return {value for value in values if "." in value} | {paths.DONE}


def file_name_literals(trees: dict[str, ast.AST]) -> list[str]:
    """``module:line`` of every string constant (docstrings aside) that is a run folder's file name, or a round
    folder's name pattern (``round_00``, ``round_*``)."""
    names, found = file_names(), []
    for name, tree in trees.items():
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            literal = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            if literal and (node.value in names or re.match(r"round_(\d|\*|$)", node.value)):
                found.append(f"{name}:{node.lineno} {node.value!r}")
    return found


def test_the_run_folders_file_names_are_defined_once() -> None:
    """Every file of a run folder is named in ``tickets/paths.py`` only, as open_lth's ``foundations/paths.py``;
    a module that writes or reads one imports its name (docstrings may mention them)."""
    assert {"ticket.safetensors", "ticket.lst", "metrics.json", "config.yaml", "DONE", "summary.json", "mask.pt"} <= file_names()
    assert file_name_literals(outside(paths.__name__)) == []


def test_the_scans_would_find_a_second_definition() -> None:
    source = """
\"\"\"A docstring may name metrics.json.\"\"\"
SCOPE = ("encoder", "decoder")
COLUMNS = ["sparsity_encoder", "sparsity_transform", "E"]
ORDER = {"imp": 0, "dense": 1}
ONE = ("imp", "E")
path = run / "metrics.json"
rounds = run.glob("round_*")
"""
    trees = {"m": ast.parse(source)}
    assert [hit.split()[0] for hit in collections_naming(trees, set(PARTS), PART_WORDS)] == ["m:3", "m:4"]
    assert [hit.split()[0] for hit in collections_naming(trees, OWN_METHODS, METHOD_NAMES)] == ["m:5"]
    assert [hit.split()[0] for hit in method_name_literals(trees)] == ["m:5", "m:5", "m:6"]
    assert file_name_literals(trees) == ["m:7 'metrics.json'", "m:8 'round_*'"]


# ------------------------------------------------------- plug-in folders
PLUGIN_FOLDERS = {"lottery_style.models": "@register_model(", "lottery_style.engine.methods": "@register_method("}


def test_a_plugin_folder_names_none_of_its_modules() -> None:
    """``models/`` and ``engine/methods/`` import every module they hold (``core.discovery``), so a new
    architecture or method is a new file: their ``__init__`` imports no architecture or method by name."""
    for package, decorator in PLUGIN_FOLDERS.items():
        registering = {name for name, path in modules().items()
                       if name.startswith(f"{package}.") and re.search(rf"^{re.escape(decorator)}", path.read_text(), re.MULTILINE)}  # fmt: skip
        assert len(registering) >= 6, package
        assert not graph()[package] & registering, f"{package}/__init__.py imports {sorted(graph()[package] & registering)}"


def test_discovery_imports_every_module_of_a_folder(tmp_path: Path, monkeypatch) -> None:
    from lottery_style.core.discovery import import_modules

    package = tmp_path / "plugins"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("FOUND = []\n")
    for name in ("b_second", "a_first"):
        (package / f"{name}.py").write_text(f"from plugins import FOUND\nFOUND.append({name!r})\n")
    (package / "sub" / "__init__.py").write_text("from plugins import FOUND\nFOUND.append('sub')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugins  # type: ignore[import-not-found]

    try:
        assert import_modules("plugins", plugins.__path__) == ["plugins.a_first", "plugins.b_second"]
        assert plugins.FOUND == ["a_first", "b_second"]  # in name order, subpackages left alone
    finally:
        for name in [m for m in sys.modules if m == "plugins" or m.startswith("plugins.")]:
            del sys.modules[name]

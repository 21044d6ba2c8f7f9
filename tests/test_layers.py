"""The package's shape, checked from outside: layers (import-linter's contracts in
pyproject.toml), no import cycles, small modules, and a writer module of public methods."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gpu_summary"
MOST_LINES = 500
_LINT = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint_imports(root: pathlib.Path) -> subprocess.CompletedProcess:
    """lint-imports on the package found first on ``root`` (its pyproject.toml's contracts)."""
    return subprocess.run(
        [sys.executable, "-c", _LINT, "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "PYTHONNOUSERSITE": "1"},
    )


def test_every_import_runs_down_the_layers():
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout, proc.stdout


def test_an_import_back_up_a_layer_breaks_the_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "gpu_summary", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    results = tmp_path / "gpu_summary" / "_core" / "results.py"
    results.write_text(results.read_text() + "\nfrom gpu_summary import writer  # noqa\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "gpu_summary._core.results -> gpu_summary.writer" in proc.stdout, proc.stdout


def _cycles(graph: object) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles():
    """Not even through imports for type hints alone (``if TYPE_CHECKING:``): a module types
    against a Protocol of its own floor instead (``_writer.state.Stoppable``,
    ``_writer.step_windows.WindowedState``, ``monitor.MonitoredWriter``)."""
    import grimp  # import-linter's graph builder (the test extra), not on the GPU image

    graph = grimp.build_graph("gpu_summary", exclude_type_checking_imports=False, cache_dir=None)
    assert len(graph.modules) > 50
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    import grimp

    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b"]]


def test_no_module_is_over_500_lines():
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
        if not path.name.endswith("_pb2.py")
    }
    assert len(sizes) > 50
    assert {path: n for path, n in sizes.items() if n > MOST_LINES} == {}


KINDS = PACKAGE / "kinds"
# The kinds without a builder in summaries/: the Projector's files (gpu_summary._embedding) and
# a Summary the caller made.
_NO_BUILDER = {"embedding", "message"}


def _kind_modules() -> list[pathlib.Path]:
    return sorted(KINDS.glob("[!_]*.py"))


def _methods_of(
    path: pathlib.Path, helpers: bool = False
) -> tuple[list[str], list[ast.FunctionDef]]:
    """The classes a module defines at the top and the methods of them all (no functions).

    With ``helpers`` (a kinds module: the kind's checks and job beside its methods), the
    ``*Methods`` classes and their methods; functions and other classes may stand beside them.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    if helpers:
        classes = [c for c in classes if c.name.endswith("Methods")]
    else:
        assert [n for n in tree.body if isinstance(n, ast.FunctionDef)] == [], path
    methods = [n for c in classes for n in c.body if isinstance(n, ast.FunctionDef)]
    return [c.name for c in classes], methods


def test_the_writer_and_its_kinds_hold_public_methods_only():
    names, methods = _methods_of(PACKAGE / "writer.py")
    assert names == ["SummaryWriter"]
    assert [m.name for m in methods if m.name.startswith("add_")] == []  # all in the kinds
    kinds = _kind_modules()
    assert len(kinds) >= 15
    for path in kinds:
        kind, kind_methods = _methods_of(path, helpers=True)
        assert len(kind) == 1 and kind[0].endswith("Methods"), (path, kind)
        assert kind_methods and all(m.name.startswith("add_") for m in kind_methods), path
        methods += kind_methods
    private = [m.name for m in methods if m.name.startswith("_") and not m.name.endswith("__")]
    assert private == ["_get_file_writer"]  # torch's name for file_writer; Lightning calls it
    undocumented = [
        m.name for m in methods if not m.name.startswith("__") and not ast.get_docstring(m)
    ]
    assert undocumented == []
    assert {"add_scalar", "add_histogram", "add_image", "flush", "close"} <= {
        m.name for m in methods
    }


def test_a_kind_is_named_after_its_builder():
    """``kinds/<name>.py`` beside ``summaries/<name>.py``: a newcomer finds a kind's method,
    checks and job by the name of its Summary, and each builder has its kind."""
    kinds = {path.stem for path in _kind_modules()}
    builders = {path.stem for path in (PACKAGE / "summaries").glob("[!_]*.py")}
    assert kinds - _NO_BUILDER == builders - {"png"}  # png.py: the images' encoder


def test_summary_writer_inherits_every_kind():
    import gpu_summary

    bases = {base.__module__ for base in gpu_summary.SummaryWriter.__mro__[1:-1]}
    assert bases == {f"gpu_summary.kinds.{path.stem}" for path in _kind_modules()}
    every = {name for name in dir(gpu_summary.SummaryWriter) if name.startswith("add_")}
    where = {getattr(gpu_summary.SummaryWriter, name).__module__ for name in every}
    assert where == bases  # no add_* method anywhere else, each kind with one at least


# Which library a tensor is from is asked in the backends alone; the graph tracer, the watcher
# (hooks on a torch model) and the torch.distributed engine use torch itself.
_MAY_NAME_TORCH = ("_backend/", "_graph/", "_distributed/torch_group.py", "distributed.py",
                   "watch.py")  # fmt: skip


def _torch_names(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, what) of each import of torch and each string naming torch or a torch module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if " " not in node.value else []
        found += [(node.lineno, n) for n in names if n == "torch" or n.startswith("torch.")]
    return found


def test_only_the_backends_ask_whether_a_tensor_is_torchs():
    named = {
        str(path.relative_to(PACKAGE)): _torch_names(path)
        for path in PACKAGE.rglob("*.py")
        if not path.name.endswith("_pb2.py")
    }
    assert named["_backend/__init__.py"]  # the finder finds the dispatch's own checks
    elsewhere = {
        path: found
        for path, found in named.items()
        if found and not path.startswith(_MAY_NAME_TORCH)
    }
    assert elsewhere == {}


def test_the_protocols_that_break_circles_hold_the_real_types(tmp_path):
    """A Protocol that stands in for a module above (or beside) its own is satisfied by the
    real type: each member there, each method taking the parameters declared."""
    import inspect

    import gpu_summary as gs
    from gpu_summary import monitor
    from gpu_summary._writer import state, step_windows

    with gs.SummaryWriter(str(tmp_path)) as writer:
        assert isinstance(writer, monitor.MonitoredWriter)
        assert isinstance(writer._state, monitor._Samples)
        assert isinstance(writer._state, step_windows.WindowedState)
    assert issubclass(monitor.GpuMonitor, state.Stoppable)
    pairs = [(step_windows.WindowedState, state.WriterState), (monitor._Samples, state.WriterState),
             (state.Stoppable, monitor.GpuMonitor)]  # fmt: skip
    for protocol, real in pairs:
        methods = [n for n, m in vars(protocol).items() if callable(m) and not n.startswith("_")]
        assert methods, protocol
        for name in methods:
            declared = list(inspect.signature(getattr(protocol, name)).parameters)
            given = list(inspect.signature(getattr(real, name)).parameters)
            assert given[: len(declared)] == declared, (protocol, name)

"""No host reduction calls into BLAS: its thread pool spins against a busy training process (a
32K-value ``numpy.dot`` measured at 8 ms instead of 4 us on a loaded machine).

Two checks. At run time, numpy's BLAS entry points (``dot``, ``vdot``, ``inner``, ``matmul``,
``einsum``, ``tensordot``, ``outer``, ``kron``, ``linalg``) are replaced by functions that raise,
and every host reduction runs — the specification's path (``GPU_SUMMARY_COMPILED=0``, as a plain
install without numba runs it) and the compiled one where numba is installed — directly and
through the writer. Methods (``a.dot(b)``) and the ``@`` operator cannot be replaced from Python,
so the source of the package is read too: none of those calls or operators outside the places
listed in ``ALLOWED``, which are not reductions of logged data.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pathlib

import numpy as np
import pytest

import gpu_summary as gs
from conftest import sample_values
from gpu_summary._backend import numpy as host_backend
from gpu_summary._backend.numpy import compiled
from gpu_summary._backend.numpy import reduce as spec
from gpu_summary._writer import step_windows

PACKAGE = pathlib.Path(gs.__file__).parent
BLAS_NAMES = ("dot", "vdot", "inner", "matmul", "einsum", "tensordot", "outer", "kron")
# (module, function): the BLAS calls that stay, none of them a reduction of logged data
ALLOWED = {
    ("__main__.py", "run_demo"): "the demo's own model, trained",
    ("__main__.py", "_log_evaluation"): "the demo's own model, evaluated",
    ("_backend/pca.py", "principal_components"): "the Projector's PCA (an eigensolver)",
    ("_core/bin_rules.py", "loss"): "numpy's own Stone loss, to choose numpy's bin count",
}
host_anomaly = importlib.import_module("gpu_summary._backend.numpy.anomaly")
HAVE_NUMBA = importlib.util.find_spec("numba") is not None


class BlasCalled(AssertionError):
    pass


@pytest.fixture
def no_blas(monkeypatch):
    """numpy's BLAS entry points raise while the test runs."""

    def refuse(name):
        def call(*args, **kwargs):
            raise BlasCalled(f"numpy.{name} called on a host reduction path")

        return call

    for name in BLAS_NAMES:
        monkeypatch.setattr(np, name, refuse(name))
    for name in ("norm", "eigh", "svd", "lstsq", "solve", "multi_dot"):
        monkeypatch.setattr(np.linalg, name, refuse(f"linalg.{name}"))


@pytest.fixture(params=["specification", "compiled"])
def path(request, monkeypatch):
    if request.param == "compiled":
        if not HAVE_NUMBA:
            pytest.skip("numba (the 'fast' extra) is missing")
        assert compiled.prepare(), "numba is installed but the compiled path is off"
    else:
        monkeypatch.setenv("GPU_SUMMARY_COMPILED", "0")
    return request.param


DTYPES = [np.float32, np.float64, np.float16, np.int16, np.int64, np.bool_]


def _arrays(dtype):
    x = sample_values(dtype, 70_000)  # more than one chunk of the specification's
    return [x, x[::3], x.reshape(700, 100).T, x[:1]]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_the_host_reductions_call_no_blas(no_blas, path, dtype):
    edges = np.array([-1.0, 0.0, 0.5, 1e300])
    for x in _arrays(dtype):
        host_backend.tensor_stats(x).result()
        host_backend.histogram_fixed(x, None).result()
        host_backend.histogram_fixed(x, edges).result()
        host_backend.histogram_even(x, 30).result()
        host_backend.histograms([x, x[:100]]).result()
        spec.tensor_stats(x).result()
        spec.histogram_fixed(x, None).result()
        spec.histogram_even(x, 30).result()
        host_backend.anomaly(x, -1.0, 1.0, 10, 64).result()
        host_anomaly.anomaly(x, -1.0, 1.0, 10, 64).result()
        ring = host_backend.flight_open(2, 1, x)  # the flight recorder's step
        host_backend.flight_add(ring, [x], [0], [0], 0).result()


def test_the_writer_calls_no_blas_on_host_data(no_blas, path, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_000).astype(np.float32)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        for step in range(3):
            writer.add_histogram("h", x, step)
            writer.add_histogram("even", x, step, bins=40)
            writer.add_histogram("edges", x, step, bins=[-1.0, 0.0, 1.0])
            writer.add_histogram("w", x + step, step, window=2)
            writer.add_histograms({"a": x, "b": x[:1000].astype(np.float16)}, step)
            writer.add_scalar("s", np.float32(step), step)
            writer.add_scalar("sw", np.array([step + 0.5]), step, window=2)
    whole = step_windows.summarize(np.array([1.0, np.nan, 3.0]))
    assert (whole.whole.count, whole.whole.sum_squares) == (2, 10.0)


def _blas_uses(tree: ast.AST):
    """(enclosing function, line, what) of every BLAS-looking call or ``@`` in ``tree``."""
    found = []

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.append((function, node.lineno, "@"))
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.MatMult):
            found.append((function, node.lineno, "@="))
        if isinstance(node, ast.Attribute) and (node.attr in BLAS_NAMES or node.attr == "linalg"):
            found.append((function, node.lineno, node.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_no_blas_call_in_the_package_source_outside_the_allowed_places():
    offending = []
    for source in sorted(PACKAGE.rglob("*.py")):
        relative = source.relative_to(PACKAGE).as_posix()
        if relative.startswith("proto/"):  # generated protobuf modules
            continue
        for function, line, what in _blas_uses(ast.parse(source.read_text())):
            if (relative, function) not in ALLOWED:
                offending.append(f"{relative}:{line} ({function}): {what}")
    assert not offending, "BLAS on a host path:\n" + "\n".join(offending)


def test_the_source_check_finds_what_it_looks_for():
    code = (
        "def f(a, b):\n    return a.dot(b) + np.einsum('i,i', a, b) + (a @ b) + np.linalg.norm(a)"
    )
    assert [what for _, _, what in _blas_uses(ast.parse(code))] == [
        "dot", "einsum", "@", "linalg",
    ]  # fmt: skip

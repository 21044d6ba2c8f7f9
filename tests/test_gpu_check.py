"""benchmarks/gpu_check.sh runs on the GPU machine's image as it is, plus the wheels it names,
fails closed, and fits the GPU machine's time.

The image has CuPy (CUDA 13), PyTorch, NumPy, protobuf, Pillow, nvidia-ml-py, TensorBoard,
hypothesis, pytest and pytest-timeout, among much else. Everything else the GPU run imports —
the package, every test module pytest collects, the GPU benchmark — must come from
benchmarks/gpu_wheels.txt, and so must everything those wheels depend on (they are installed
with --no-deps). Without a GPU the script stops at once, non-zero; under GS_REQUIRE_GPU=1 (which
it exports) a skipped GPU test fails, and so does a run where no GPU test passed.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conftest import _cuda_available

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
# What the GPU image holds of what the run imports (its whole list is far longer: numba,
# lightning, transformers, jax, matplotlib, onnx, pandas, scipy, ...).
IMAGE = {
    "cupy-cuda13x", "torch", "numpy", "protobuf", "pillow", "nvidia-ml-py", "pytest",
    "pytest-timeout", "pytest-xdist", "tensorboard", "tensorboard-data-server", "absl-py",
    "grpcio", "markdown", "werkzeug", "hypothesis", "sortedcontainers", "numba", "mpi4py",
    "lightning", "transformers", "jax", "matplotlib", "onnx", "onnxruntime", "pandas", "scipy",
    "psutil", "requests", "pyyaml",
}  # fmt: skip
# What those bring with them (their own requirements), so present on the image too.
IMAGE_DEPENDENCIES = {
    "packaging", "pluggy", "iniconfig", "typing-extensions", "setuptools", "markupsafe",
    "jinja2", "filelock", "sympy", "networkx", "fsspec", "mpmath", "cuda-pathfinder",
    "attrs", "execnet", "llvmlite", "six", "urllib3", "certifi", "idna",
}  # fmt: skip
# Import names that are not their distribution's name.
DISTRIBUTIONS = {"PIL": "pillow", "google": "protobuf", "cupy": "cupy-cuda13x", "pynvml":
                 "nvidia-ml-py", "tensorboardX": "tensorboardx"}  # fmt: skip
# The most the stages may take together: the GPU machine runs a command for at most 600 s and
# is lent for 15 minutes in all, its start included.
STAGES_BUDGET_S = 480


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried() -> set[str]:
    lines = (ROOT / "benchmarks" / "gpu_wheels.txt").read_text().splitlines()
    return {_normal(Requirement(line).name) for line in lines if line and line[0] != "#"}


def module_level_imports(path: Path) -> set[str]:
    """Top-level names a module imports when it is loaded (not those in functions, nor those
    guarded by ``try: ... except ImportError``)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def gpu_run_imports() -> set[str]:
    files = [*ROOT.joinpath("gpu_summary").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py"),
             ROOT / "benchmarks" / "bench_gpu.py"]  # fmt: skip
    local = {p.stem for p in ROOT.joinpath("tests").glob("*.py")} | {"gpu_summary", "support"}
    names = set().union(*map(module_level_imports, files))
    return names - set(sys.stdlib_module_names) - local


def test_every_import_of_the_gpu_run_is_on_the_image_or_carried():
    available = IMAGE | IMAGE_DEPENDENCIES | carried()
    missing = {}
    for name in gpu_run_imports():
        distribution = _normal(DISTRIBUTIONS.get(name, name))
        if distribution not in available:
            missing[name] = distribution
    assert not missing, f"add to benchmarks/gpu_wheels.txt: {missing}"


def test_carried_wheels_bring_their_own_dependencies():
    available = IMAGE | IMAGE_DEPENDENCIES | carried()
    lacking = {}
    for name in carried():
        for line in metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(
                {"extra": "", "python_version": "3.12"}
            ):
                continue
            if _normal(requirement.name) not in available:
                lacking.setdefault(name, []).append(requirement.name)
    assert not lacking, f"the carried wheels need more wheels: {lacking}"


def test_the_check_script_names_what_to_carry():
    script = SCRIPT.read_text()
    fetch = (ROOT / "benchmarks" / "fetch_gpu_wheels.sh").read_text()
    assert "benchmarks/gpu_wheels.txt" in script and "-r benchmarks/gpu_wheels.txt" in fetch
    checked = set(re.findall(r'"([\w.]+)"', script.split("for name in (", 1)[1].split(")")[0]))
    assert {"google_crc32c", "deflate", "tensorboardX", "pytest_timeout", "cupy"} <= checked


def _stages(script: str) -> dict[str, int]:
    return {name: int(s) for name, s in re.findall(r"^\s*stage (\w+) (\d+) ", script, re.M)}


def test_the_stages_fit_the_device_budget_and_the_header_plans_each():
    script = SCRIPT.read_text()
    stages = _stages(script)
    assert list(stages) == ["preflight", "wheels", "imports", "gpu_tests", "bench_gpu",
                            "bench_windows", "bench_probe"]  # fmt: skip
    assert sum(stages.values()) <= STAGES_BUDGET_S, stages
    assert f"planned={sum(stages.values())}" in script
    header = script.split("set -u", 1)[0]
    for name, seconds in stages.items():
        assert re.search(rf"^#\s+{name}\s+{seconds}\s", header, re.M), (name, seconds)
    assert f"In all {sum(stages.values())} s" in header
    assert "export GS_REQUIRE_GPU=1" in script and "--timeout=" in script
    # At most 8 files come back from the GPU machine's output folder.
    written = set(re.findall(r'"\$out/([\w.]+)"', script)) | {"stages.txt"}
    assert len(written) <= 7, written


def test_without_a_gpu_the_check_script_stops_at_once(tmp_path):
    if _cuda_available():
        pytest.skip("a CUDA device is here: the script would run the whole check")
    start = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert time.monotonic() - start < 30
    assert proc.returncode != 0
    assert "gpu_check: no GPU found" in proc.stdout + proc.stderr
    assert "no GPU found" in (tmp_path / "out" / "environment.txt").read_text()
    stages = (tmp_path / "out" / "stages.txt").read_text()
    assert "preflight" in stages and "exit 1" in stages and "gpu_tests" not in stages
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "environment.txt",
        "stages.txt",
    ]


def _pytest(*args: str, require_gpu: bool, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """pytest in a fresh interpreter, with GS_REQUIRE_GPU=1 or without it."""
    env = {k: v for k, v in os.environ.items() if k != "GS_REQUIRE_GPU"}
    env |= {"GS_REQUIRE_GPU": "1"} if require_gpu else {}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_under_gs_require_gpu_a_skipped_gpu_test_fails():
    if _cuda_available():
        pytest.skip("a CUDA device is here: the GPU test runs instead of skipping")
    node = "tests/test_backend_cuda.py::test_jax_arrays"
    proc = _pytest("-m", "gpu", node, require_gpu=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    why = "GS_REQUIRE_GPU=1 is set, so this GPU test must run, but it skipped: needs a CUDA device"
    assert why in proc.stdout
    assert f"ERROR {node}" in proc.stdout
    assert "0 gpu-marked tests passed; 0 passed is a failure" in proc.stdout
    plain = _pytest("-m", "gpu", node, require_gpu=False)  # a skip, yet a run that tested nothing
    assert plain.returncode == 5 and "1 skipped" in plain.stdout, plain.stdout
    assert "GPU tests: 1 test skipped; no CUDA device here" in plain.stdout


def test_under_gs_require_gpu_no_gpu_test_passing_is_a_failure(tmp_path):
    # The hooks alone (tests/support/require_gpu.py), over tests that need no device.
    (tmp_path / "test_marks.py").write_text(
        textwrap.dedent("""
        import pytest
        from support.require_gpu import skip_peer

        def test_host():
            pass

        @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.gpu)])
        def test_param(x):
            pass

        @pytest.mark.gpu
        def test_peer_without_gpu_support():
            skip_peer("this library was built without CUDA")
    """)
    )
    args = ["-p", "support.require_gpu", "-o", "markers=gpu", "test_marks.py"]
    host_only = _pytest(*args, "-k", "host", require_gpu=True, cwd=tmp_path)
    assert host_only.returncode == 1, host_only.stdout
    assert "0 gpu-marked tests passed; 0 passed is a failure" in host_only.stdout
    assert _pytest(*args, "-k", "host", require_gpu=False, cwd=tmp_path).returncode == 0
    everything = _pytest(*args, require_gpu=True, cwd=tmp_path)
    assert everything.returncode == 0, everything.stdout
    assert "1 gpu-marked tests passed" in everything.stdout
    assert "3 passed, 1 skipped" in everything.stdout

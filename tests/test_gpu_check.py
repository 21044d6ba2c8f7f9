"""benchmarks/gpu_check.sh runs on the GPU machine's image as it is, plus the wheels it names.

The image has CuPy (CUDA 13), PyTorch, NumPy, protobuf, Pillow, nvidia-ml-py and pytest.
Everything else the GPU run imports — the package, every test module pytest collects, the GPU
benchmark — must come from benchmarks/gpu_wheels.txt, and so must everything those wheels
depend on (they are installed with --no-deps).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
IMAGE = {"cupy-cuda13x", "torch", "numpy", "protobuf", "pillow", "nvidia-ml-py", "pytest"}
# What those bring with them (their own requirements), so present on the image too.
IMAGE_DEPENDENCIES = {
    "packaging", "pluggy", "iniconfig", "typing-extensions", "setuptools", "markupsafe",
    "jinja2", "filelock", "sympy", "networkx", "fsspec", "mpmath", "cuda-pathfinder",
}  # fmt: skip
# Import names that are not their distribution's name.
DISTRIBUTIONS = {"PIL": "pillow", "google": "protobuf", "cupy": "cupy-cuda13x", "pynvml":
                 "nvidia-ml-py", "tensorboardX": "tensorboardx"}  # fmt: skip


# Imported only by a module that loads when the import succeeds (numba: the compiled host
# kernels, gpu_summary/_backend/numpy/compiled_kernels.py, which compiled_runtime.kernels imports
# inside try/except ImportError; without it the NumPy specification runs): not carried.
OPTIONAL = {"numba"}


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
    return names - set(sys.stdlib_module_names) - local - OPTIONAL


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
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    fetch = (ROOT / "benchmarks" / "fetch_gpu_wheels.sh").read_text()
    assert "benchmarks/gpu_wheels.txt" in script and "-r benchmarks/gpu_wheels.txt" in fetch
    checked = set(re.findall(r'"([\w.]+)"', script.split("for name in (", 1)[1].split(")")[0]))
    assert {"google_crc32c", "tensorboard", "tensorboardX", "hypothesis"} <= checked

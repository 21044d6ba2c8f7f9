"""The GPU path against the real CUDA toolchain, without a GPU: CuPy's own compile path, the
PTX it produces under CuPy's ``-ftz=true``, the machine code's resources, and the stand-in
held against the real CuPy's API.

The real CuPy (``cupy-cuda12x``, test extra) imports without a driver; it runs in helper
processes (tests/support/cupy_path.py, tests/support/cupy_api.py) so that this process keeps
the stand-in (tests/support/fake_cupy.py) for the ``emulated`` tests.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from gpu_summary._backend.cuda_kernels import anomaly as anomaly_abi
from gpu_summary._backend.cuda_kernels import catalogue
from gpu_summary._backend.cuda_kernels import pr_curve as pr_abi
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import ladder as _ladder
from support import cupy_path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ("80", "90")
MODULES = catalogue.MODULES
# Modules whose every instantiation must be exact whatever the FTZ mode (gs_thumbnails too:
# its uint8 result could not change, but it needs no flushing instruction either).
EXACT_MODULES = MODULES
NO_OPT_IN_SHARED = 48 * 1024  # bytes of shared memory a block may use without an opt-in

if importlib.util.find_spec("cupy") is None:
    pytest.skip("the real CuPy is in the test extra: pip install -e '.[test]'",
                allow_module_level=True)  # fmt: skip


@pytest.fixture(scope="session")
def cupy_build(tmp_path_factory):
    """Every module compiled by CuPy's compile path for each architecture (one process per
    architecture, in parallel): {module: {arch: report}}, and the folder of the binaries.

    20-40 s on two cores: the tests that take it (or ``resources``) are marked slow."""
    out = tmp_path_factory.mktemp("cupy_path")
    script = Path(cupy_path.__file__)
    processes = []
    for arch in ARCHITECTURES:
        folder = out / f"sm_{arch}"
        folder.mkdir()
        processes.append((folder, subprocess.Popen(
            [sys.executable, str(script), str(folder), arch],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )))  # fmt: skip
    modules: dict = {}
    for folder, process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-5000:]
        report = json.loads((folder / "report.json").read_text())
        for filename, by_arch in report["modules"].items():
            for arch, entry in by_arch.items():
                entry["cubin"] = folder / entry["cubin"]
                entry["ptx"] = (folder / entry["cubin"].name).with_suffix(".ptx").read_text()
                modules.setdefault(filename, {})[arch] = entry
    return modules


@pytest.mark.parametrize("filename", MODULES)
@pytest.mark.slow
def test_cupy_path_compiles_every_module_as_raw_module_would(cupy_build, filename):
    for arch in ARCHITECTURES:
        entry = cupy_build[filename][arch]
        # CuPy's own options, in its order: ours, -ftz=true, the architecture (a cubin), and
        # --device-as-default-execution-space; plus its include folders.
        assert entry["options"] == [
            *kernel_sources.COMPILE_OPTIONS, "-ftz=true", f"-arch=sm_{arch}",
            "--device-as-default-execution-space",
        ]  # fmt: skip
        assert entry["include_folders"] >= 1
        assert entry["method"] == "cubin"
        assert not entry["log"].strip(), entry["log"]  # no warning either
        # The compile completed; only loading the module needed a driver.
        assert "driver" in (entry["load_error"] or "").lower(), entry["load_error"]


@pytest.mark.parametrize("filename", MODULES)
@pytest.mark.slow
def test_lowered_names_are_those_the_backend_looks_up(cupy_build, filename):
    expressions = catalogue.name_expressions(filename)
    for arch in ARCHITECTURES:
        entry = cupy_build[filename][arch]
        mapping = entry["mapping"]
        assert set(mapping) == set(expressions)
        assert len(set(mapping.values())) == len(expressions)  # one kernel each
        entries = cupy_path.ptx_entries(entry["ptx"])
        assert set(mapping.values()) == set(entries)
        for dtype in kernel_sources.CUDA_TYPES:  # what one module build of a dtype asks for
            assert set(catalogue.module_expressions(filename, dtype)) <= set(mapping)


@pytest.mark.slow
def test_the_ladders_constants_reach_the_ptx_as_immediates(cupy_build):
    # The prologue's macros (gpu_summary/_core/ladder.py) in ladder_estimate, 1 / smallest folded.
    constants = (_ladder.SMALLEST, 1.0 / _ladder.SMALLEST, _ladder.CEILING,
                 _ladder.BUCKETS_PER_OCTAVE)  # fmt: skip
    for arch in ARCHITECTURES:
        ptx = cupy_build[kernel_sources.REDUCE_FILE][arch]["ptx"]
        for value in constants:
            bits = np.float64(value).view(np.uint64)
            assert f"0d{int(bits):016X}" in ptx, (arch, value)


@pytest.mark.parametrize("filename", EXACT_MODULES)
@pytest.mark.slow
def test_ftz_no_flush_to_zero_instruction_under_cupys_options(cupy_build, filename):
    for arch in ARCHITECTURES:
        entry = cupy_build[filename][arch]
        by_name = {lowered: expression for expression, lowered in entry["mapping"].items()}
        flushed = {by_name.get(name, name): sorted(set(found))
                   for name, found in entry["ftz"].items() if found}  # fmt: skip
        assert not flushed, f"{filename} sm_{arch}: .ftz instructions in {flushed}"
        assert entry["ftz_outside_entries"] == 0


def test_ftz_counter_sees_flushing_instructions():
    ptx = """
    .visible .entry k(.param .u64 p) {
        cvt.ftz.f64.f32 %fd1, %f1;  setp.lt.ftz.f32 %p1, %f1, %f2;
        add.rn.f64 %fd2, %fd1, %fd1; fma.rn.ftz.f32 %f3, %f1, %f2, %f1;
    }
    """
    assert cupy_path.ftz_instructions(ptx) == ["cvt.ftz.f64.f32", "setp.lt.ftz.f32",
                                               "fma.rn.ftz.f32"]  # fmt: skip
    assert list(cupy_path.ptx_entries(ptx)) == ["k"]


def _max_dynamic_shared(expression: str) -> int:
    """The most dynamic shared memory the backend launches an instantiation with."""
    if expression.startswith("gs_reduce<"):
        mode = int(expression.rsplit(",", 1)[1].rstrip("> "))
        return reduce_abi.reduce_shared_bytes(
            mode, reduce_abi.SHARED_EDGES, reduce_abi.SHARED_EVEN_BINS
        )
    if expression.startswith("gs_multi_ladder<"):
        return reduce_abi.reduce_shared_bytes(reduce_abi.LADDER)
    if expression.startswith("gs_pr_counts<"):
        return pr_abi.shared_bytes(pr_abi.MAX_THRESHOLDS)
    return 0


@pytest.fixture(scope="session")
def resources(cupy_build):
    """{arch: {expression: cuobjdump's REG/STACK/SHARED/LOCAL + dynamic shared + blocks}}."""
    table: dict = {}
    for filename in MODULES:
        for arch in ARCHITECTURES:
            entry = cupy_build[filename][arch]
            usage = cupy_path.resource_usage(entry["cubin"])
            for expression, lowered in entry["mapping"].items():
                row = dict(usage[lowered])
                row["DYNAMIC"] = _max_dynamic_shared(expression)
                row["BLOCKS"] = cupy_path.resident_blocks(
                    arch, row["REG"], row["SHARED"] + row["DYNAMIC"]
                )
                table.setdefault(arch, {})[expression] = row
    return table


@pytest.mark.slow
def test_resources_no_spill_no_local_memory(resources):
    for arch, rows in resources.items():
        local = {e: (r["STACK"], r["LOCAL"]) for e, r in rows.items() if r["STACK"] or r["LOCAL"]}
        assert not local, f"sm_{arch}: stack/local memory (spills or indexed arrays): {local}"


@pytest.mark.slow
def test_resources_shared_memory_within_the_default_limit(resources):
    for arch, rows in resources.items():
        over = {e: r["SHARED"] + r["DYNAMIC"] for e, r in rows.items()
                if r["SHARED"] + r["DYNAMIC"] > NO_OPT_IN_SHARED}  # fmt: skip
        assert not over, f"sm_{arch}: shared memory above 48 KB needs an opt-in: {over}"


@pytest.mark.slow
def test_resources_every_kernel_keeps_two_blocks_resident(resources):
    # The backend sizes grids by the driver's occupancy calculator (one wave of resident
    # blocks, tests/test_backend_cuda.py); this keeps each kernel able to hide latency.
    for arch, rows in resources.items():
        few = {e: (r["REG"], r["BLOCKS"]) for e, r in rows.items()
               if r["BLOCKS"] < 2 and e not in anomaly_abi.ANOMALY_PLAIN_KERNELS}  # fmt: skip
        assert not few, f"sm_{arch}: fewer than 2 resident blocks of 256: {few}"


def test_resident_blocks_follow_the_occupancy_rules():
    assert cupy_path.resident_blocks("90", 32, 0) == 8  # the 64-warp limit
    assert cupy_path.resident_blocks("90", 48, 0) == 5  # 1536 registers a warp: 10 a partition
    assert cupy_path.resident_blocks("90", 64, 0) == 4
    assert cupy_path.resident_blocks("90", 40, 34048) == 6  # 228 KB / 35 KB
    assert cupy_path.resident_blocks("80", 40, 34048) == 4  # 164 KB / 35 KB
    assert cupy_path.resident_blocks("90", 255, 0) == 1


def test_conformance_stand_in_and_backend_match_the_real_cupy():
    process = subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "cupy_api.py")],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert process.returncode == 0, process.stderr[-5000:]
    report = json.loads(process.stdout)
    assert not report["problems"], "\n".join(report["problems"])
    # It really compared: the calls the backend makes, and the stand-in's mirrors.
    assert "cupy.cuda.runtime.memcpyAsync" in report["backend_names"]
    assert "cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor" in report["backend_names"]
    assert {"cuda.alloc_pinned_memory", "cuda.Stream.from_external", "RawModule"} <= set(
        report["compared"]
    )


def test_conformance_checker_reports_drift(monkeypatch):
    from support import cupy_api

    real = cupy_api.real_signature
    doc = type("Doc", (), {"__doc__": "alloc_pinned_memory(size_t size) -> PinnedMemoryPointer"})
    assert real(doc) == (["size"], {"size"}, "PinnedMemoryPointer")

    def fake(size: int) -> bytearray:  # what the stand-in returned before: not CuPy's type
        return bytearray(size)

    assert cupy_api.fake_signature(fake)[2] == "bytearray"


def _requirements(extra: str) -> list[str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the package runs on 3.10 too
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [r.replace(" ", "") for r in project["optional-dependencies"][extra]]


def _cupy_14_2_or_newer(requirement: Requirement) -> bool:
    # CuPy 14.0 never loads a module built with name_expressions from its disk cache, 14.1 only
    # partly: below 14.2 every process compiles the kernels again.
    return not requirement.specifier.contains("14.1.9") and requirement.specifier.contains("14.2")


@pytest.mark.parametrize(
    ("extra", "cupy"), [("cuda12", "cupy-cuda12x"), ("cuda13", "cupy-cuda13x")]
)
def test_cuda_extras_bring_what_raw_module_needs(extra, cupy):
    # CuPy 14 wheels bring neither NVRTC nor the CUDA libraries the PCA path uses (cuBLAS,
    # cuSOLVER): the [ctk] extra of CuPy pulls NVIDIA's toolkit wheels for its CUDA major.
    requirements = [Requirement(r) for r in _requirements(extra)]
    (cupy_requirement,) = [r for r in requirements if r.name == cupy]
    assert cupy_requirement.extras == {"ctk"} and _cupy_14_2_or_newer(cupy_requirement)
    assert any(r.name == "nvidia-ml-py" for r in requirements), requirements


def test_test_extra_has_the_real_cupy_nvrtc_and_cuobjdump():
    requirements = _requirements("test")
    for name in ("cupy-cuda12x", "nvidia-cuda-nvrtc-cu12", "nvidia-cuda-cuobjdump"):
        assert any(r.startswith(name) for r in requirements), (name, requirements)
    (cupy_requirement,) = [Requirement(r) for r in requirements if r.startswith("cupy-cuda12x")]
    assert _cupy_14_2_or_newer(cupy_requirement), cupy_requirement
    assert cupy_path.cuobjdump(), "the test extra's cuobjdump is not installed"

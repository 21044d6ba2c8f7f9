"""Compile every kernel module through the real CuPy's own compile path, without a GPU.

Run as a script (in its own process, so that the test process never imports the real CuPy and
the ``emulated`` tests keep their stand-in)::

    python3 tests/support/cupy_path.py OUTDIR 80 90

For each module and architecture it calls ``cupy._core.core.compile_with_cache`` — the function
``RawModule`` compiles with — with the backend's source, options and every name expression the
backend may request. CuPy assembles the options itself (its include folders,
``assemble_cupy_compiler_options``), appends ``-ftz=true``, the architecture and
``--device-as-default-execution-space``, and runs NVRTC. Two things need a driver and are
replaced: CuPy's per-device memoisation of the ``-arch`` option (the undecorated function CuPy
wraps is called instead) and the final ``Module.load`` of the cubin (it fails, after the
compile, and is expected to). The NVRTC program is observed as it compiles: its options, log,
cubin, PTX and lowered names go into OUTDIR (``report.json``, ``<module>.sm_<arch>.cubin`` and
``.ptx``).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path


def ptx_entries(ptx: str) -> dict[str, str]:
    """The body of each ``.entry`` (kernel) of a PTX text, by mangled name."""
    entries = {}
    for match in re.finditer(r"\.entry\s+(\w+)\s*\(", ptx):
        end = ptx.find("\n}", match.end())
        entries[match.group(1)] = ptx[match.start() : end if end >= 0 else len(ptx)]
    return entries


def ftz_instructions(text: str) -> list[str]:
    """Every flush-to-zero instruction in PTX text (``add.ftz.f32``, ``cvt.ftz.f64.f32``, ...)."""
    return re.findall(r"\b[a-z]+(?:\.[a-z0-9]+)*\.ftz\b(?:\.[a-z0-9]+)*", text)


def cuobjdump() -> str | None:
    """The ``cuobjdump`` of the nvidia-cuda-cuobjdump wheel (or one on PATH)."""
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("nvidia")
    for folder in spec.submodule_search_locations if spec else ():
        for candidate in sorted(Path(folder).glob("*/bin/cuobjdump")):
            return str(candidate)
    return shutil.which("cuobjdump")


def whole_cubin(binary: bytes) -> bytes:
    """The cubin as an ELF file: CuPy 14's ``nvrtc.getCUBIN`` returns it less its last byte
    (CPython's hidden NUL after the bytes object completes it for ``cuModuleLoadData``; a file
    needs it written out). An ELF whose program headers already fit is returned as it is."""
    import struct

    phoff = struct.unpack_from("<Q", binary, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", binary, 54)
    end = max(phoff + phentsize * phnum, len(binary))
    return binary + b"\0" * (end - len(binary))


def resource_usage(cubin: Path) -> dict[str, dict[str, int]]:
    """Per kernel (mangled name): REG, STACK, SHARED (static bytes), LOCAL, by cuobjdump."""
    import subprocess

    tool = cuobjdump()
    assert tool, "cuobjdump not found: install the test extra (nvidia-cuda-cuobjdump)"
    text = subprocess.run([tool, "-res-usage", str(cubin)], capture_output=True, text=True,
                          check=True, timeout=120).stdout  # fmt: skip
    usage = {}
    for match in re.finditer(r"Function (\w+):\s*\n\s*(.*)", text):
        usage[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", match.group(2))}
    return usage


# Per multiprocessor, compute capability 8.0 and 9.0 alike but for shared memory: 64K 32-bit
# registers in 4 partitions, allocated per warp in units of 256; 64 warps; 32 blocks; shared
# memory up to 164 KB (8.0) / 228 KB (9.0), 1 KB of it reserved per block.
SHARED_PER_SM = {"80": 167936, "90": 233472}


def resident_blocks(arch: str, registers: int, shared_bytes: int, threads: int = 256) -> int:
    """Blocks of ``threads`` that fit on one multiprocessor at once (the CUDA occupancy
    calculator's rules for sm_80/sm_90)."""
    warps = -(-threads // 32)
    warp_registers = -(-max(registers, 1) * 32 // 256) * 256
    by_registers = 4 * (16384 // warp_registers) // warps
    by_shared = SHARED_PER_SM[arch] // (shared_bytes + 1024)
    return min(by_registers, 64 // warps, 32, by_shared)


def main(out: Path, architectures: list[str]) -> int:
    os.environ["CUPY_CACHE_DIR"] = tempfile.mkdtemp(prefix="gs_cupy_cache_")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import cupy
    import cupy._core.core as core
    from cupy.cuda import compiler
    from cupy_backends.cuda.libs import nvrtc

    from gpu_summary._backend.cuda_kernels import catalogue
    from gpu_summary._backend.cuda_kernels import sources as kernel_sources

    # CuPy memoises this per device (which needs a driver); call the function it wraps.
    compiler._get_arch_for_options_for_nvrtc = compiler._get_arch_for_options_for_nvrtc.__wrapped__
    programs: list[dict] = []
    compile_program = compiler._NVRTCProgram.compile

    def observed_compile(self, options=(), log_stream=None):
        binary, mapping = compile_program(self, options, log_stream)
        programs.append(
            {"options": list(options), "method": self.method, "binary": binary,
             "mapping": mapping, "ptx": nvrtc.getPTX(self.ptr)}
        )  # fmt: skip
        return binary, mapping

    compiler._NVRTCProgram.compile = observed_compile
    report: dict = {"cupy": cupy.__version__, "nvrtc": list(compiler._get_nvrtc_version())}
    report["modules"] = {}
    for filename in catalogue.MODULES:
        source = kernel_sources.kernel_source(filename)
        expressions = catalogue.name_expressions(filename)
        for arch in architectures:
            log = io.StringIO()
            programs.clear()
            load_error = None
            try:
                core.compile_with_cache(
                    source, kernel_sources.COMPILE_OPTIONS, arch=arch, name_expressions=expressions,
                    log_stream=log,
                )  # fmt: skip
            except cupy.cuda.runtime.CUDARuntimeError as error:  # Module.load: no driver here
                load_error = str(error)
            compiled = [p for p in programs if p["mapping"]]  # not CuPy's empty probe program
            assert len(compiled) == 1, f"{filename} sm_{arch}: {len(compiled)} programs compiled"
            program = compiled[0]
            stem = f"{Path(filename).stem}.sm_{arch}"
            (out / f"{stem}.cubin").write_bytes(whole_cubin(program["binary"]))
            ptx = program["ptx"].decode() if isinstance(program["ptx"], bytes) else program["ptx"]
            (out / f"{stem}.ptx").write_text(ptx)
            entries = ptx_entries(ptx)
            mapping = {
                expression: (name.decode() if isinstance(name, bytes) else name)
                for expression, name in program["mapping"].items()
            }
            report["modules"].setdefault(filename, {})[arch] = {
                "options": [o for o in program["options"] if not o.startswith("-I")],
                "include_folders": len([o for o in program["options"] if o.startswith("-I")]),
                "method": program["method"],
                "log": log.getvalue(),
                "load_error": load_error,
                "mapping": mapping,
                "ftz": {name: ftz_instructions(body) for name, body in entries.items()},
                "ftz_outside_entries": len(ftz_instructions(ptx))
                - sum(len(ftz_instructions(body)) for body in entries.values()),
                "cubin": f"{stem}.cubin",
            }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))

#!/usr/bin/env bash
# The project's GPU check, in one go: every GPU-marked test, benchmarks/bench_gpu.py, then the
# device cases of benchmarks/bench_windows.py (window=K on a GPU: host time, copies).
#
# Usage (from the repository root, on a machine with a CUDA GPU, CuPy, PyTorch, pytest and
# TensorBoard): bash benchmarks/gpu_check.sh [OUTDIR]
# OUTDIR defaults to $OUT, else ./gpu_check_out; it receives environment.txt, gpu_tests.txt,
# bench_gpu.txt and bench_windows.txt. The three timeouts add up to under the device tool's
# 600 s a command. The
# GPU image has CuPy (CUDA 13), PyTorch, NumPy, protobuf, Pillow, nvidia-ml-py and pytest; what
# else the run imports is listed in benchmarks/gpu_wheels.txt: `bash benchmarks/fetch_gpu_wheels.sh`
# fetches those wheels into .whl/ (on a machine that reaches a package registry), carry .whl,
# and this script installs them. It stops at once, naming what to carry, if an import fails.
set -u -o pipefail
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_summary_site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/gpu_summary_site"
fi
python3 - <<'PY' || exit 1
import importlib, sys
missing = []
for name in ("cupy", "torch", "numpy", "google.protobuf", "PIL", "pynvml", "pytest",
             "google_crc32c", "deflate", "tensorboard", "tensorboardX", "hypothesis"):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing.append(f"{name} ({exc})")
if missing:
    print("gpu_check: cannot import " + ", ".join(missing) + ". Carry the wheels of "
          "benchmarks/gpu_wheels.txt: bash benchmarks/fetch_gpu_wheels.sh, then carry .whl",
          file=sys.stderr)
    sys.exit(1)
PY

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 - <<'PY'
import platform, numpy, cupy, google.protobuf
print("python", platform.python_version(), "numpy", numpy.__version__, "cupy", cupy.__version__,
      "protobuf", google.protobuf.__version__)
print("cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver",
      cupy.cuda.runtime.driverGetVersion())
try:
    import torch
    print("torch", torch.__version__, torch.cuda.get_device_name(0))
except ImportError:
    print("torch: not installed")
PY
} 2>&1 | tee "$out/environment.txt"

status=0
timeout 240 python3 -m pytest -m gpu -p no:cacheprovider -q -rfEs --durations=10 tests \
    2>&1 | tee "$out/gpu_tests.txt" || status=1
timeout 300 python3 benchmarks/bench_gpu.py --repeat 10 --tbx-images "${TBX_IMAGES:-4}" \
    2>&1 | tee "$out/bench_gpu.txt" || status=1
timeout 50 python3 benchmarks/bench_windows.py --steps 500 \
    2>&1 | tee "$out/bench_windows.txt" || status=1
exit $status

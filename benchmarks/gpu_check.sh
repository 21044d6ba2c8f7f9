#!/usr/bin/env bash
# The project's GPU check, in one go, failing closed: every GPU-marked test, then
# benchmarks/bench_gpu.py, then the device cases of benchmarks/bench_windows.py.
#
# Usage (from the repository root, on a machine with a CUDA GPU, CuPy, PyTorch, pytest and
# pytest-timeout): bash benchmarks/gpu_check.sh [OUTDIR]
#
# The GPU machine runs one command for at most 600 s and is lent for 15 minutes in all, its
# start (1-2 min) included, so the stages are planned to end within 480 s on one H100. Each runs
# under `timeout` with its budget (seconds; a stage that ignores the TERM is killed 5 s later):
#   preflight      15  CuPy sees a CUDA device (getDeviceCount() >= 1); else the script prints
#                      "gpu_check: no GPU found" and stops at once, non-zero
#   wheels         20  the carried wheels (.whl/, benchmarks/gpu_wheels.txt) installed
#   imports        25  every import of the run checked, nvidia-smi and the library versions
#   gpu_tests     200  pytest -m gpu with GS_REQUIRE_GPU=1 (a skipped GPU test fails, and so
#                      does a run where none passed), pytest-timeout's --timeout=60 a test
#   bench_gpu     140  bench_gpu.py --sizes 8M,128M --repeat 5 --calls 500 (the histogram's
#                      bandwidth against a device copy, host us per call and the no-sync proofs
#                      come first; the seed's image batch last)
#   bench_windows  40  bench_windows.py --steps 500 --require-device (its device cases)
#   bench_probe    30  bench_probe.py --device-only --require-device (a probe's kernel against
#                      a device-to-device copy of the same tensor)
# In all 470 s. A stage that fails or runs out of time makes the exit status non-zero; the
# stages after it still run.
#
# OUTDIR defaults to $OUT, else ./gpu_check_out. Everything is written there as it happens (a
# run cut off still leaves what it saw), seven files: stages.txt (each stage's start, budget,
# elapsed seconds and exit status), environment.txt, gpu_tests.txt, gpu_tests.xml (JUnit, at
# the end of the tests), bench_gpu.txt, bench_windows.txt and bench_probe.txt.
#
# The GPU image has CuPy (CUDA 13), PyTorch, NumPy, protobuf, TensorBoard, hypothesis, pytest
# and pytest-timeout; what else the run imports is listed in benchmarks/gpu_wheels.txt: `bash
# benchmarks/fetch_gpu_wheels.sh` fetches those wheels into .whl/ (on a machine that reaches a
# package registry), carry .whl, and this script installs them. It stops, naming what to carry,
# if an import fails.
set -u -o pipefail
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export GS_REQUIRE_GPU=1
stages="$out/stages.txt"
: >"$stages"
planned=470
begin=$SECONDS

# stage NAME BUDGET LOG COMMAND...: COMMAND under `timeout BUDGET`, its output appended to LOG
# as it comes, its start, elapsed seconds and exit status (124: out of time) in stages.txt.
stage() {
    local name=$1 budget=$2 log=$3 start=$SECONDS rc
    shift 3
    printf '%s %-13s start at %4d s, budget %3d s\n' "$(date -u +%T)" "$name" \
        $((start - begin)) "$budget" >>"$stages"
    timeout -k 5 "$budget" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    printf '%s %-13s ended at %4d s, elapsed %3d s of %3d s, exit %d\n' "$(date -u +%T)" \
        "$name" $((SECONDS - begin)) $((SECONDS - start)) "$budget" "$rc" >>"$stages"
    return "$rc"
}

finish() {
    printf 'total %d s of %d s planned, exit %d\n' $((SECONDS - begin)) "$planned" "$1" \
        >>"$stages"
    exit "$1"
}

stage preflight 15 "$out/environment.txt" python3 - <<'PY'
import sys

try:
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    reason = "the CUDA driver reports 0 devices"
except Exception as exc:  # no CuPy, no driver (CUDARuntimeError), a driver too old
    count, reason = 0, f"{type(exc).__name__}: {exc}"
if count < 1:
    sys.exit(f"gpu_check: no GPU found ({reason}); GPU tests and benchmarks not run")
name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
print(f"gpu_check: {count} CUDA device(s), device 0: {name}")
PY
rc=$?
if [ "$rc" -ne 0 ]; then
    [ "$rc" -ge 124 ] && echo "gpu_check: no GPU found (the device query took over 15 s)" \
        | tee -a "$out/environment.txt" >&2
    finish "$rc"
fi

if compgen -G ".whl/*.whl" >/dev/null; then
    stage wheels 20 "$out/environment.txt" python3 -m pip install -q --no-index --no-deps \
        --no-compile --no-cache-dir --upgrade --target /tmp/gpu_summary_site .whl/*.whl ||
        finish 1
    export PYTHONPATH="$PYTHONPATH:/tmp/gpu_summary_site"
fi

stage imports 25 "$out/environment.txt" python3 - <<'PY' || finish 1
import importlib, platform, subprocess, sys, time

missing = []
for name in ("cupy", "torch", "numpy", "google.protobuf", "PIL", "pynvml", "pytest",
             "pytest_timeout", "google_crc32c", "deflate", "tensorboard", "tensorboardX",
             "hypothesis"):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing.append(f"{name} ({exc})")
if missing:
    sys.exit("gpu_check: cannot import " + ", ".join(missing) + ". Carry the wheels of "
             "benchmarks/gpu_wheels.txt: bash benchmarks/fetch_gpu_wheels.sh, then carry .whl")
print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
try:
    subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                    "--format=csv"], timeout=10, check=False)
except (OSError, subprocess.TimeoutExpired) as exc:
    print(f"nvidia-smi: {exc}")
import cupy, google.protobuf, numpy, pytest, torch

print("python", platform.python_version(), "numpy", numpy.__version__, "cupy", cupy.__version__,
      "protobuf", google.protobuf.__version__, "pytest", pytest.__version__)
print("cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver",
      cupy.cuda.runtime.driverGetVersion())
print("torch", torch.__version__, torch.cuda.get_device_name(0))
PY

status=0
# pytest-timeout loads as the image's plugin; --timeout errors out if it is absent. A test over
# 60 s is a hang: the slowest, the demo in a process of its own, compiles its kernels in seconds.
stage gpu_tests 200 "$out/gpu_tests.txt" python3 -m pytest -m gpu -p no:cacheprovider -v \
    -rfEs --durations=15 --timeout=60 --junitxml="$out/gpu_tests.xml" tests || status=1
stage bench_gpu 140 "$out/bench_gpu.txt" python3 benchmarks/bench_gpu.py --sizes 8M,128M \
    --repeat 5 --calls 500 --images 100 --tbx-images "${TBX_IMAGES:-4}" || status=1
stage bench_windows 40 "$out/bench_windows.txt" python3 benchmarks/bench_windows.py \
    --steps 500 --require-device || status=1
stage bench_probe 30 "$out/bench_probe.txt" python3 benchmarks/bench_probe.py --device-only \
    --require-device || status=1
finish "$status"

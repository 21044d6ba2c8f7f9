#!/usr/bin/env bash
# Fetch into .whl/ the wheels that benchmarks/gpu_check.sh needs and the GPU machine's image
# lacks (benchmarks/gpu_wheels.txt): CPython 3.12, x86_64 Linux. Run from the repository root on
# a machine that reaches a package registry; carry .whl with the device command.
set -eu
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
ls -l .whl

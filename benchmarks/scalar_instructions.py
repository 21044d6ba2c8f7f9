"""Instructions the caller's thread spends per ``add_scalar(tag, float, step)``, by callgrind.

Usage: python benchmarks/scalar_instructions.py [--tree PATH ...] [--seeds 0,1,2]

Each tree (a checkout of this project; default: this one) runs the same loop under
``valgrind --tool=callgrind --separate-threads=yes`` twice, 2,000 and 22,000 calls, and the
main thread's difference over 20,000 is the cost of one call: start-up, imports and the
writer thread cancel out. The writer thread waits for the GIL during the loop (a long switch
interval, a queue that never fills), so the count is the hot path alone, not the thread
switches a loaded machine happens to make. Instruction counts do not move with the machine's
load, unlike times; a string hash seed changes them by about 1 %, so compare trees per seed.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

_LOOP = """
import gc, sys, tempfile
import gpu_summary as gs
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as folder:
    writer = gs.SummaryWriter(folder, max_queue=50_000, flush_secs=1_000)
    writer.add_scalar("loss", 0.5, 0)
    writer.flush()
    gc.disable()
    sys.setswitchinterval(100)  # the writer thread waits for the GIL until the loop ends
    for i in range(n):
        writer.add_scalar("loss", 0.25, i)
    sys.setswitchinterval(0.005)
    writer.close()
"""


def _main_thread_instructions(tree: pathlib.Path, calls: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        script = pathlib.Path(scratch, "loop.py")
        script.write_text(_LOOP)
        out = os.path.join(scratch, "callgrind.out")
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED=str(seed))
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}", sys.executable, str(script), str(calls)],
            env=env, check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        (first,) = glob.glob(out + "*-01")  # thread 1: the caller's
        for line in pathlib.Path(first).read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary line in callgrind's output for {tree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--tree", action="append", type=pathlib.Path, help="a checkout")
    parser.add_argument("--seeds", default="0,1,2", help="PYTHONHASHSEED values")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("scalar_instructions: valgrind is not installed (apt-get install valgrind)")
    trees = args.tree or [here]
    for seed in (int(s) for s in args.seeds.split(",")):
        for tree in trees:
            few = _main_thread_instructions(tree, 2_000, seed)
            many = _main_thread_instructions(tree, 22_000, seed)
            print(f"seed {seed}  {tree}  {(many - few) / 20_000:,.0f} instructions a call")


if __name__ == "__main__":
    main()

"""Regenerate gpu_summary/proto/*_pb2.py from protos/*.proto.

Usage: python scripts/gen_protos.py

The generated modules must import under every protobuf runtime that pyproject.toml allows
(4.25 to 7.x). Gencode from protoc >= 26 carries a runtime version check that rejects both older
runtimes and runtimes a major version newer, so the modules are generated with protoc 25.1, whose
gencode has no such check. That protoc ships in grpcio-tools 1.62.3, which needs protobuf < 5 and
so cannot live beside the test dependencies: this script keeps it in its own virtual environment
under .cache/ (created on first use).

`tests/test_protos.py` fails when the checked-in modules no longer match the .proto sources.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
# The import path the .proto files use for each other, and the Python package they land in.
VIRTUAL_DIR = "gpu_summary/proto"
GRPCIO_TOOLS = "grpcio-tools==1.62.3"
PROTOC_VERSION = "libprotoc 25.1"
TOOL_ENV = ROOT / ".cache" / "protoc-25"


def _tool_python() -> pathlib.Path:
    python = TOOL_ENV / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOL_ENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", GRPCIO_TOOLS], check=True)
    version = subprocess.run(
        [str(python), "-m", "grpc_tools.protoc", "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version != PROTOC_VERSION:
        sys.exit(f"{TOOL_ENV} runs {version!r}, expected {PROTOC_VERSION!r}; delete it and rerun")
    return python


def main() -> None:
    python = _tool_python()
    sources = sorted(PROTO_DIR.glob("*.proto"))
    out_dir = ROOT / VIRTUAL_DIR
    for stale in out_dir.glob("*_pb2.py"):
        stale.unlink()
    subprocess.run(
        [
            str(python),
            "-m",
            "grpc_tools.protoc",
            f"-I{VIRTUAL_DIR}={PROTO_DIR}",
            f"--python_out={ROOT}",
            *(f"{VIRTUAL_DIR}/{p.name}" for p in sources),
        ],
        check=True,
    )
    print(f"generated {len(sources)} modules into {out_dir.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""The code base passes its own ruff configuration (pyproject.toml)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extra)")
    proc = subprocess.run(
        [ruff, *command, "gpu_summary", "tests", "benchmarks", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_test_installs_a_package():
    """Tests never install system or Python packages (``.ci/run`` does, before the suite):
    no command line in a test module (a list or tuple of words, as subprocess takes) runs
    apt-get, apt or dpkg, nor pip into the environment (a test may fetch a wheel into a
    ``--target`` folder of its own, as the protobuf range check does)."""
    import ast

    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.List, ast.Tuple)):
                continue
            words = [
                n.value for n in node.elts if isinstance(n, ast.Constant)
                and isinstance(n.value, str)
            ]  # fmt: skip
            system = any(w in {"apt-get", "apt", "dpkg"} for w in words)
            into_environment = "pip" in words and "install" in words and "--target" not in words
            if system or into_environment:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []

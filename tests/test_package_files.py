"""What a Python package is expected to carry: the license its metadata names, the py.typed
marker (PEP 561) and a changelog, and a wheel that ships the first two."""

from __future__ import annotations

import hashlib
import importlib.resources
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The Apache License 2.0 exactly as the Apache Software Foundation publishes it
# (https://www.apache.org/licenses/LICENSE-2.0.txt), the text GitHub and PyPI recognise.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def _project_fields() -> dict[str, str]:
    """pyproject.toml's one-line ``key = value`` fields of [project], values as written (no
    tomllib before Python 3.11)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r"^([\w-]+) = (.+)$", project, re.M))


def test_the_package_is_marked_typed():
    marker = importlib.resources.files("gpu_summary") / "py.typed"
    assert marker.is_file(), "gpu_summary/py.typed (PEP 561) is missing"


def test_the_license_is_the_apache_2_text_the_metadata_names():
    project = _project_fields()
    assert project["license"] == '"Apache-2.0"'
    assert project["license-files"] == '["LICENSE"]'
    text = (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in text[:200] and b"Version 2.0, January 2004" in text[:200]
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256, "LICENSE differs from Apache 2.0"


def test_the_changelog_keeps_an_unreleased_section_and_the_current_version():
    version = _project_fields()["version"].strip('"')
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{version}]" in changelog


@pytest.mark.slow
def test_the_wheel_ships_the_license_and_the_typed_marker(tmp_path):
    """The wheel as pip builds it (hatchling fetched into pip's isolated build environment)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0 and "hatchling" in proc.stderr and "No matching" in proc.stderr:
        pytest.skip(f"could not fetch hatchling from the package index: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("gpu_summary-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gpu_summary/py.typed" in names
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names, [n for n in names if "dist-info" in n]
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata

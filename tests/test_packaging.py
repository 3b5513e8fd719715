"""What a user of the package sees of it: the version in one place, the license file."""
import importlib.metadata
import pathlib
import subprocess
import sys

import fastoptim

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_version():
    out = subprocess.run([sys.executable, "-m", "fastoptim", "--version"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == f"fastoptim {fastoptim.__version__}"


def test_installed_metadata_carries_the_same_version():
    assert importlib.metadata.version("fastoptim") == fastoptim.__version__


def test_license_file_is_the_declared_bsd_3_clause():
    text = (ROOT / "LICENSE").read_text()
    assert "Redistribution and use in source and binary forms" in text
    assert "3. Neither the name of the copyright holder" in text
    assert 'license = { text = "BSD-3-Clause" }' in (ROOT / "pyproject.toml").read_text()

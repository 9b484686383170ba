"""pyproject.toml builds without deprecation warnings, and the runtime needs only its runtime dependencies."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_metadata_builds_without_a_deprecation_warning(tmp_path: Path) -> None:
    """`license = {text = ...}` made setuptools warn that such builds stop working in February 2027."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, tmp_path / name)
    code = (
        "import warnings; warnings.simplefilter('error')\n"  # any warning fails the build
        "from setuptools import build_meta\n"
        "print(build_meta.prepare_metadata_for_build_wheel('.'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Deprecat" not in done.stdout + done.stderr
    metadata = (tmp_path / done.stdout.strip().splitlines()[-1] / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: MIT" in metadata.splitlines()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: trimesh")]
    assert requires == ['Requires-Dist: trimesh==5.2.0; extra == "test"']


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


def test_nothing_at_runtime_imports_the_test_only_packages() -> None:
    """trimesh (and the other test extras) are for the tests: the bot, the library and the CLI never import them."""
    test_only = {"trimesh", "pytest", "simcord", "playwright"}
    assert {"trimesh==5.2.0"} <= set(PYPROJECT["project"]["optional-dependencies"]["test"])
    assert not any(dep.startswith("trimesh") for dep in PYPROJECT["project"]["dependencies"])
    runtime = [ROOT / "bot.py", *ROOT.glob("t2f/**/*.py"), *ROOT.glob("cogs/**/*.py")]
    found = {
        str(path.relative_to(ROOT)): sorted(used) for path in runtime if (used := imported_modules(path) & test_only)
    }
    assert found == {}

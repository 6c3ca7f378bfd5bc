"""What ``pip install hgtrain`` ships: declared dependencies, licence, type marker, changelog."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DISTRIBUTION = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "cv2": "opencv-python-headless",
}  # import name -> distribution name


def imported_packages(folder: Path) -> set[str]:
    """Top-level names of every absolute import in the Python files under ``folder``."""
    names = set()
    for file in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_package_hgtrain_imports_is_declared():
    """In the dependencies, or in an extra: ``deploy`` (imported only by the ONNX export) or
    ``photos`` (only by the photo background family)."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    requirements = (
        project["dependencies"] + extras["deploy"] + extras["photos"] + extras["classical"]
    )
    declared = {re.split(r"[\[<>=!~ ]", d)[0].lower() for d in requirements}
    third_party = imported_packages(ROOT / "hgtrain") - set(sys.stdlib_module_names) - {"hgtrain"}
    missing = {DISTRIBUTION.get(name, name).lower() for name in third_party} - declared
    assert not missing, f"imported but not in pyproject.toml dependencies: {sorted(missing)}"


def test_upper_bounds_are_explained_next_to_the_dependencies():
    text = (ROOT / "pyproject.toml").read_text()
    capped = [d for d in PYPROJECT["project"]["dependencies"] if "<" in d]
    for dependency in capped:
        name = re.split(r"[\[<>=]", dependency)[0]
        assert re.search(rf"^# - {name} <\d", text, re.MULTILINE), f"no reason given for {name}"
    assert not any(d.startswith(("torch>", "torch<", "torchvision")) and "<" in d for d in capped)


def test_the_licence_file_matches_the_declared_licence_and_ships():
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert "LICENSE" in PYPROJECT["project"]["license-files"]


def test_the_package_is_marked_typed_and_ships_its_configs():
    assert (ROOT / "hgtrain" / "py.typed").is_file()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["hgtrain"]
    assert {"py.typed", "configs/*.yaml"} <= set(package_data)


def test_the_changelog_has_an_entry_for_this_version():
    version = PYPROJECT["project"]["version"]
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()


def test_the_layout_shows_the_architecture():
    """Subpackages by kind, at most four modules at the top (``__init__`` included), and no two
    modules with one file name anywhere in the package."""
    package = ROOT / "hgtrain"
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert {"models", "task", "data", "training", "cli", "weights", "tools"} <= subpackages
    assert len(list(package.glob("*.py"))) <= 4
    names = [p.name for p in package.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    module_names = {name.removesuffix(".py") for name in names}
    packages = {p.name for p in package.rglob("*") if (p / "__init__.py").is_file()}
    assert module_names & packages == set(), "a module named like a package"

"""The text and vision packages build on the core only: no cosmology, no each other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sop_cosmo

PACKAGE = Path(sop_cosmo.__file__).parent


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = ["sop_cosmo", package]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names.add(mod)
            # `from .. import cosmo` imports a sub-package by name.
            names.update(f"{mod}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(("package", "other"), [("text", "vision"), ("vision", "text")])
def test_domain_package_imports_core_only(package, other):
    files = sorted((PACKAGE / package).glob("*.py"))
    assert files, f"no modules found in sop_cosmo/{package}"
    imported = set().union(*(_imported_modules(f, package) for f in files))
    ours = {m for m in imported if m.startswith("sop_cosmo")}
    forbidden = {
        m
        for m in ours
        if m.startswith(("sop_cosmo.cosmo", f"sop_cosmo.{other}"))
        or m in ("sop_cosmo.cosmo", f"sop_cosmo.{other}")
    }
    assert not forbidden, f"sop_cosmo/{package} imports {sorted(forbidden)}"
    assert any(m.startswith("sop_cosmo.core") for m in ours), ours


def test_import_parser_sees_relative_imports(tmp_path):
    # The checker itself must catch a forbidden relative import, or the test above is void.
    bad = tmp_path / "bad.py"
    bad.write_text("from ..cosmo import analysis\nfrom ..core import SumOfParts\n")
    names = _imported_modules(bad, "text")
    assert "sop_cosmo.cosmo" in names and "sop_cosmo.core" in names


@pytest.mark.slow
def test_no_cosmo_module_loaded_transitively():
    # Importing both domain packages (and their demos) in a fresh interpreter must not load
    # any sop_cosmo.cosmo module, directly or through core/attribution.
    code = (
        "import sys, sop_cosmo.text.demo, sop_cosmo.vision.demo; "
        "print([m for m in sys.modules if m.startswith('sop_cosmo.cosmo')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

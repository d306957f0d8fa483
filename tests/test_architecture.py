"""The package's import rules and size budget, read from the source with ``ast``.

- ``sop_cosmo.core`` knows nothing of the domains; domains never import each other;
- a cosmo stage never imports a sibling stage (``controls`` replays the pipeline, so it may);
- pure maths does no I/O and imports neither contracts nor stages; contracts and the shared
  layers import no stage;
- no module is over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sop_cosmo"
DOMAINS = ("cosmo", "vision", "text", "theory")
STAGES = "sop_cosmo.cosmo.stages"
MAY_IMPORT_STAGES = {f"{STAGES}.controls"}
IO_MODULES = ("h5py", "matplotlib", "healpy.fitsfunc", "pandas")
MAX_LINES = 500


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # `from pkg import sub` may import a submodule
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Broken rules, as readable lines, for ``{module name: (source, is_package)}``."""
    out = []
    for module, (source, is_package) in sorted(modules.items()):
        names = imports(source, module, is_package)
        domain = module.split(".")[1] if module.count(".") >= 1 else ""
        for name in sorted(names):
            if not name.startswith("sop_cosmo") and not any(_within(name, m) for m in IO_MODULES):
                continue
            if _within(module, "sop_cosmo.core"):
                for d in DOMAINS:
                    if _within(name, f"sop_cosmo.{d}"):
                        out.append(f"{module}: the core imports the {d} domain ({name})")
            if domain in DOMAINS:
                for d in DOMAINS:
                    if d != domain and _within(name, f"sop_cosmo.{d}"):
                        out.append(f"{module}: domain {domain} imports domain {d} ({name})")
            if _within(name, STAGES) and name != STAGES:
                sibling = ".".join(name.split(".")[:4])
                if _within(module, STAGES) and module != STAGES:
                    if sibling != module and module not in MAY_IMPORT_STAGES:
                        out.append(f"{module}: a stage imports the sibling stage {sibling}")
                elif _within(module, "sop_cosmo.cosmo"):
                    out.append(f"{module}: a non-stage module imports the stage {sibling}")
            if _within(module, "sop_cosmo.cosmo.maths"):
                bad = ("sop_cosmo.cosmo.contracts", STAGES, *IO_MODULES)
                for prefix in bad:
                    if _within(name, prefix):
                        out.append(f"{module}: pure maths imports {name}")
    return out


def _package_modules() -> dict[str, tuple[str, bool]]:
    return {
        module_name(p): (p.read_text(), p.name == "__init__.py")
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def test_the_package_keeps_its_import_rules():
    found = violations(_package_modules())
    assert not found, "\n".join(found)


def test_no_module_is_over_the_size_budget():
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


@pytest.mark.parametrize(
    ("module", "source", "what"),
    [
        ("sop_cosmo.core.model", "from sop_cosmo.cosmo.models import build_model", "core"),
        ("sop_cosmo.vision.demo", "import sop_cosmo.text.model", "domain vision imports"),
        ("sop_cosmo.cosmo.stages.analyse", "from .train import train", "sibling stage"),
        ("sop_cosmo.cosmo.stages.analyse", "from sop_cosmo.cosmo.stages import train", "sibling"),
        ("sop_cosmo.cosmo.maths.bootstrap", "import h5py", "pure maths imports h5py"),
        ("sop_cosmo.cosmo.maths.sky", "from ..contracts import patchfile", "pure maths"),
        ("sop_cosmo.cosmo.models", "from .stages.train import train", "non-stage module"),
    ],
)
def test_a_forbidden_import_is_caught(module, source, what):
    # The rule checker itself can fail: each of these sources breaks one rule.
    found = violations({module: (source, False)})
    assert found and what in found[0], found


def test_allowed_imports_pass():
    allowed = {
        "sop_cosmo.cosmo.stages.controls": ("from .train import train", False),
        "sop_cosmo.cosmo.stages.analyse": ("from ..maths.group_types import purity", False),
        "sop_cosmo.cosmo.models": ("from sop_cosmo.core import SumOfParts", False),
        "sop_cosmo.vision.model": ("from sop_cosmo.attribution import insertion_deletion", False),
    }
    assert violations(allowed) == []


def test_relative_imports_resolve():
    names = imports("from ..maths import sky\nfrom . import train", "sop_cosmo.cosmo.stages.x")
    assert {"sop_cosmo.cosmo.maths.sky", "sop_cosmo.cosmo.stages.train"} <= names


def test_the_cosmo_public_face_resolves():
    import sop_cosmo.cosmo as cosmo

    for name in cosmo.__all__:
        assert getattr(cosmo, name) is not None, name
    with pytest.raises(AttributeError):
        cosmo.no_such_name  # noqa: B018

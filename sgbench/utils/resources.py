"""Where shipped files live: in a source checkout and in an installed wheel alike.

The repository keeps recipes/, reference_stats/ and baselines/ at its top level; the wheel ships them
inside the package (pyproject.toml maps them to sgbench/recipes, sgbench/reference_stats,
sgbench/baselines), next to sgbench/assets (models, classifiers) and sgbench/data. So every shipped
file has two possible homes, and `shipped(name)` finds the one that exists, whatever the working
directory.

Paths in recipes and on the command line are resolved by `resolve(path)`: an existing path is taken
as it is (relative to the working directory); otherwise a path that starts with one of the shipped
folder names (`recipes/...`, `reference_stats/...`, `baselines/...`, `sgbench/...`) is looked up in
the installed package. So `sgbench sample -c sgbench/assets/animal-routed.safetensors` and
`sgbench bench recipes/bench/animal.yaml` work from any directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # .../sgbench
SHIPPED = ("recipes", "reference_stats", "baselines")


def shipped(name: str) -> Path:
    """The directory of a shipped folder: sgbench/<name> when installed, <repo>/<name> in a checkout."""
    assert name in SHIPPED, name
    installed = PACKAGE / name
    return installed if installed.is_dir() else PACKAGE.parent / name


def source_checkout() -> bool:
    """True when running from the repository (files are writable and belong to the project)."""
    return (PACKAGE.parent / "pyproject.toml").is_file() and not (PACKAGE / "recipes").is_dir()


def recipes_dir() -> Path:
    return shipped("recipes")


def baselines_dir() -> Path:
    return shipped("baselines")


def assets_dir() -> Path:
    return PACKAGE / "assets"


def resolve(path: str | Path) -> Path:
    """A user- or recipe-given path: as given when it exists, else the shipped file it names."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    parts = p.parts
    if parts and parts[0] in SHIPPED:
        return shipped(parts[0]).joinpath(*parts[1:])
    if parts and parts[0] == "sgbench":
        return PACKAGE.joinpath(*parts[1:])
    return p

"""Package discovery only (metadata lives in pyproject.toml).

The repository keeps recipes/, reference_stats/ and baselines/ at its top level, where users look for
them; the wheel ships them inside the package as sgbench/recipes, sgbench/reference_stats and
sgbench/baselines, so an installed sgbench finds them from any working directory (sgbench.utils.resources).
"""

from setuptools import find_packages, setup

SHIPPED = {"sgbench.recipes": "recipes", "sgbench.reference_stats": "reference_stats", "sgbench.baselines": "baselines"}

setup(packages=find_packages(include=["sgbench", "sgbench.*"]) + list(SHIPPED), package_dir=SHIPPED)

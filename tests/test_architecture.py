"""The layers on the whiteboard are the layers in the code: import-linter's contracts (pyproject.toml,
docs/design.md "Layers") hold, and no module outgrows one sitting."""

import os
from pathlib import Path

from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold(capsys):
    """Layers in order, guidance methods independent (the contracts print what broke)."""
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # the contracts name sgbench, found from the repository root or the installed package
        status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert status == EXIT_STATUS_SUCCESS, capsys.readouterr().out[-4000:]



def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "sgbench").rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"

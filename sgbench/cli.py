"""The `sgbench` command line: a Typer app only.

Each command turns options into config objects and calls one library function. A `SgbenchError`
becomes a one-line message on stderr and exit code 2; no traceback for user mistakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.errors import SgbenchError

class _Group(typer.core.TyperGroup):
    """Turns SgbenchError, raised anywhere below, into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SgbenchError as e:
            typer.secho(f"Error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="sgbench",
    cls=_Group,
    help="Benchmark diffusion guidance methods on token-sparse diffusion transformers.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


# === sample ==========================================================================================
# (core) filled in by sgbench.sampling


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

"""`sgbench tune`: each method of a bench recipe at its own best setting, with an equal budget per method
(successive halving on tuning seeds), then scored on the bench's held-out seed. The logic lives in
sgbench.workflows.tune (docs/design.md, "Tuning")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.cli import Format, app


@app.command(
    epilog="""Examples:

    sgbench tune --quick                      # the embedded benchmark's quick subset, small budget (CI)

    sgbench tune animal                       # every method of recipes/bench/animal.yaml, K = 8 candidates each

    sgbench tune animal --max-gflops-image 3  # also the best setting of each method within 3 GFLOPs per image

    sgbench tune t2i --quick --out runs/tune-t2i

Writes OUT/tune.json (seeds, rungs, every candidate's score, the chosen settings), OUT/tuned.yaml (a bench
recipe: `sgbench bench OUT/tuned.yaml` reruns the tuned board; one tuned-maxXgflops.yaml per budget),
the tuned leaderboard (OUT/BUDGET/quick or OUT/BUDGET/full: leaderboard.md, .csv, .json; BUDGET is
`all` or maxXgflops) and OUT/pareto.png. Every candidate is a resumable run directory under OUT/runs:
a rerun keeps finished runs.
"""
)
def tune(
    recipe: Annotated[Optional[str], typer.Argument(help="Bench recipe: a file, or a shipped name (animal, t2i; default animal)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The recipe's quick subset with a small budget (tune.quick)")] = False,
    max_gflops_image: Annotated[Optional[list[float]], typer.Option(
        "--max-gflops-image", metavar="X", help="Also tune within X analytic GFLOPs per image (repeatable: one tuned board per budget, beside the unrestricted one)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the recipe's out/tune)")] = None,
    fmt: Format = "table",
) -> None:
    """Tune every method of a bench recipe with the same budget, then score the winners on the held-out seed."""
    from sgbench.results import check_format, render
    from sgbench.workflows.tune import load_tuning, run_tuning

    check_format(fmt)
    plan = load_tuning(recipe, quick=quick, out=out, budgets=max_gflops_image)
    done = run_tuning(plan, log=lambda m: typer.echo(m, err=True))
    for budget, board in done["boards"].items():
        if len(done["boards"]) > 1:
            typer.echo(f"budget {budget}:")
        typer.echo(render(board, fmt), nl=False)
    typer.echo(f"tune: {plan.out / 'tune.json'} ({done['report']['wall_s']:.0f} s)", err=True)

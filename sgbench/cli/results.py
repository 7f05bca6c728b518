"""Commands that rank runs: `bench` (the main job), `compare` (leaderboards of run directories) and
`sweep` (a grid of runs and its figures). Their logic lives in sgbench.workflows.bench,
sgbench.results.compare and sgbench.workflows.sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.cli import (OUT_IS_A_FOLDER, BatchSize, Checkpoint, Device, Extractor, Format, Guide, GuidanceSpec, NumSamples, Ref,
                         Solver, Steps, app, guidance_spec, renamed, report_gate, with_guidance_options)
from sgbench.results import sort_help


@app.command(
    epilog="""Examples:

    sgbench bench                       # the embedded benchmark: recipes/bench/animal.yaml

    sgbench bench --quick               # three configurations, 100 samples each, gated against its baseline

    sgbench bench t2i                   # the text-to-image leaderboard: GenEval on a stratified prompt subset

    sgbench bench t2i --full            # GenEval's protocol: every prompt, 4 images each

    sgbench bench recipes/bench/animal.yaml --out runs/mybench --format markdown

Every cell is an ordinary run directory (OUT/full/<backbone>/<label>): a rerun keeps finished cells
and resumes a killed one; `sgbench compare OUT/full` rebuilds the leaderboard at any time.
"""
)
def bench(
    recipe: Annotated[Optional[str], typer.Argument(help="Bench recipe: a file, or a shipped name (animal, t2i; default animal)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Only the recipe's quick subset (gated against its baseline)")] = False,
    full: Annotated[bool, typer.Option("--full", help="A text benchmark's whole protocol (GenEval: every prompt, 4 images each)")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the recipe's)")] = None,
    fmt: Format = "table",
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Gate against this baseline instead of the recipe's (exit 1 on regression)")] = None,
) -> None:
    """The main job: sample, evaluate and rank every guidance configuration of a bench recipe."""
    from sgbench.results import check_format, render
    from sgbench.results.compare import gate_against
    from sgbench.workflows.bench import baseline_of, load_bench_recipe, run_bench

    check_format(fmt)
    r = load_bench_recipe(recipe)
    gate = baseline_of(r, quick=quick, full=full, given=baseline)  # read now: a bad baseline fails before sampling
    board = run_bench(r, quick=quick, full=full, out=str(out) if out else None, log=lambda m: typer.echo(m, err=True))
    typer.echo(render(board, fmt), nl=False)
    if gate is not None:
        report_gate(gate_against(board, gate))


@app.command(
    epilog="""Examples:

    sgbench compare runs/bench                                  # every run directory inside, best FD first

    sgbench compare runs/sg-* runs/cfg-* --sort gflops_step --format markdown --file leaderboard.md

    sgbench compare runs/bench --format csv --ref animal-all --extractor animal

    sgbench compare runs/bench --save-baseline baselines/quick.json --tolerance fid=0.5

    sgbench compare runs/bench --baseline baselines/quick.json --tolerance class_accuracy=0.05   # CI gate

    sgbench compare runs/bench/imagenet-sit-xl2/full --reference paper     # the paper's Table 2 beside your runs

    sgbench compare runs/bench runs/t2i --plots figures     # the figures of each board, class and text-to-image

Columns: FD (FID with the inception extractor), sFID, IS, precision, recall, class accuracy, each ± half
its 95% interval; GFLOPs per image per step (paper convention, Table 2), as run, Δ to the unguided
dense model, GFLOPs per image, measured images/s. `tier` groups rows whose intervals overlap; `*` marks
the Pareto front of FD against GFLOPs within a backbone; runs that differ only in seed are one row.
Broken or unevaluated runs are listed below the table with the reason. With --baseline the exit code
is 1 when a configuration regressed beyond its tolerance and its 95% interval, or is missing.
--reference paper adds the paper's reported rows in a block of their own (never ranked with the runs):
Table 2, plus Table 1 when a run's backbone masks tokens and Table 3 when runs are scored with Inception.
Class and text-to-image runs are separate boards; --plots draws each board's figures and names a board
whose runs support none. Runs evaluated with per-sample features (eval fid stores them) and sharing seed,
sample count and labels are paired: a column gives each row's FD minus its reference row's (the best, or
--against) with a paired 95% interval, and the tiers come from Holm's step-down on those differences.
"""
)
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders of run directories")],
    sort: Annotated[Optional[str], typer.Option("--sort", "-s", help=sort_help())] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Worst first")] = False,
    fmt: Format = "table",
    file: Annotated[Optional[Path], typer.Option("--file", help="Write the leaderboard to this file instead of stdout")] = None,
    ref: Annotated[Optional[str], typer.Option("--ref", help="Reference whose metrics to show (default: the baseline's, else the one most runs have)")] = None,
    extractor: Annotated[Optional[str], typer.Option("--extractor", "-e", help="Extractor whose metrics to show (default as for --ref)")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Regression gate: compare with this baseline JSON; exit 1 on regression")] = None,
    tolerance: Annotated[Optional[list[str]], typer.Option("--tolerance", "-t", help="METRIC=VALUE (absolute) or METRIC=N% (relative); overrides the baseline's")] = None,
    save_baseline: Annotated[Optional[Path], typer.Option("--save-baseline", help="Write this leaderboard as a baseline JSON (tolerances stored inside)")] = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Also write the figures these runs support (PNG) into this folder")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", help="paper: the paper's reported rows beside the runs, labelled and "
                                                     "never ranked with them; paper:N,M picks its tables (1-3 ImageNet, 4-5 text-to-image)")] = None,
    against: Annotated[Optional[str], typer.Option("--against", help="Pair every row with this row (its method label, e.g. "
                                                   "unguided or 'cfg w=1.5'; default: each backbone's best)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", hidden=True, help="Deprecated spelling of --file")] = None,
) -> None:
    """The leaderboard of run directories: quality ± 95% interval next to cost, tiers, Pareto front."""
    from sgbench.results.compare import compare_runs

    file = renamed(file, out, command="compare", new="--file", old="-o/--out", why=OUT_IS_A_FOLDER)
    result = compare_runs(runs, sort=sort, reverse=reverse, fmt=fmt, file=file, ref=ref, extractor=extractor, baseline=baseline,
                          tolerances=tolerance or [], save_baseline_to=save_baseline, plots=plots, reference=reference,
                          against=against)
    if result.file is None:
        typer.echo(result.text, nl=False)
    for line in result.notes:
        typer.echo(line, err=True)
    if result.gate is not None:
        report_gate(result.gate)


@app.command(
    epilog="""Examples:

    sgbench sweep -c CKPT --ref animal-all --grid gs=0,0.25,0.5 --grid gw=0.5,0.7,0.9 --grid scale=1.3,1.5,1.7,1.9

    sgbench sweep -c CKPT --ref animal-all --sparsity 0,0.25,0.5,0.75 -n 200 --steps 20   # Fig. 4 only

    sgbench sweep -c CKPT --ref animal-all -g cfg --grid scale=1,1.5,2,3 --seed 0 --seed 1

    sgbench sweep -c CKPT --ref animal-all -g sg:gs=0.5,gw=0.9 --grid scale=1.5,2,3     # fixed parameters in the spec

    sgbench sweep -c CKPT --ref animal-all --grid scale=1.5,2 --gs 0.5 --gw 0.9 --interval 0.2:0.8

One run directory per cell under --out (compare them with `sgbench compare OUT`); cells the method
rejects (sg's gs >= gw) are skipped with the reason, and finished cells are kept, so rerunning the same
command resumes the sweep. Guidance options (--gs, --scale, ...) and the spec's key=value hold a
parameter fixed in every cell.
Figures (PNG, in OUT/figures): FD over (gs, gw) per scale (Fig. 6), throughput over (gs, gw) (Fig. A1),
FD against sparsity without guidance (Fig. 4: `--sparsity`, i.e. sg at w = 1, where only the strong
branch runs), or FD against the one parameter another method varies.
"""
)
@with_guidance_options
def sweep(
    checkpoint: Checkpoint,
    ref: Ref,
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="NAME=V1,V2,... a swept guidance parameter (repeat)")] = None,
    guidance: GuidanceSpec = "sg",
    sparsity: Annotated[Optional[str], typer.Option(help="G1,G2,... extra cells without guidance at these sparsities (Fig. 4)")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Run seed (repeat for several; compare shows mean ± interval)")] = None,
    guide: Guide = None,
    extractor: Extractor = "animal",
    num: NumSamples = 100,
    batch_size: BatchSize = 100,
    steps: Steps = 40,
    solver: Solver = "euler",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the cells' run directories")] = Path("runs/sweep"),
    figures: Annotated[Optional[Path], typer.Option(help="Folder for the PNG figures (default OUT/figures)")] = None,
    device: Device = "cpu",
    guidance_params: dict | None = None,
) -> None:
    """Sample and evaluate a grid of guidance parameters, then plot it (the paper's Fig. 4, 6 and A1)."""
    from sgbench.workflows.sweep import parse_grid, parse_levels, sweep_and_plot

    method, fixed = guidance_spec(guidance, guidance_params or {})
    report = sweep_and_plot(
        checkpoint, out, ref=ref, extractor=extractor, method=method, grid=parse_grid(grid or []), fixed=fixed,
        sparsity=parse_levels(sparsity), seeds=seed or [0], guide=guide, num=num, batch_size=batch_size, steps=steps,
        solver=solver, device=device, figures=figures, echo=typer.echo,
    )
    typer.echo(report.table, nl=False)
    for p in report.figures:
        typer.echo(f"Wrote {p}")

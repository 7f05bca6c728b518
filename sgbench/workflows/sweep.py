"""Sweeps: a grid over a guidance method's parameters, one run directory per cell, then figures.

    dirs = run_sweep("ckpt.safetensors", "runs/sweep", grid={"gs": [0, 0.25, 0.5], "gw": [0.7, 0.9],
                     "scale": [1.3, 1.5]}, ref="animal-all", sparsity=[0, 0.25, 0.5, 0.75])
    plot_sweep(dirs, "runs/sweep/figures")      # Fig. 4, Fig. 6, Fig. A1 (sgbench.results.plots)

    report = sweep_and_plot("ckpt.safetensors", "runs/sweep", ref="animal-all", grid=...)   # both, for `sgbench sweep`

Each cell is one `sgbench.workflows.jobs.sample_and_evaluate`. Cells the method rejects (sg's gs >= gw) are
skipped with the reason; everything else (every value's syntax, checkpoints, reference and its
resolution, sample counts, the figures' folder) is checked before the first cell runs; cells whose run directory already has samples and metrics for (extractor, ref) are not
redone, so rerunning a sweep resumes it (a half-sampled cell resumes from its shards).

Sparsity without guidance (the paper's Fig. 4) is `sg` at w = 1: only the strong branch runs, at
gs = gamma (gs = 0 is the dense conditional model, identical to `unguided`). sg requires gs < gw even
where the weak branch never runs, so those cells set gw halfway between gamma and 1.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from sgbench.utils.errors import SgbenchError
from sgbench.workflows.jobs import Evaluation, check_jobs, sample_and_evaluate
from sgbench.sampling import SampleConfig


@dataclass(frozen=True)
class Cell:
    method: str
    params: dict
    seed: int
    out: Path
    skip: str | None = None  # why the cell does not run (invalid parameters)


def parse_levels(text: str | None) -> list[float]:
    """`--sparsity` '0,0.25,0.5' -> [0.0, 0.25, 0.5]; None or '' -> []."""
    try:
        return [float(g) for g in text.split(",") if g.strip()] if text else []
    except ValueError:
        raise SgbenchError(f"Expected --sparsity as G1,G2,... (e.g. 0,0.25,0.5) but got '{text}'") from None


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """['gs=0,0.25', 'gw=0.9'] -> {'gs': [0.0, 0.25], 'gw': [0.9]} (the method validates the values)."""
    grid: dict[str, list] = {}
    for item in items:
        name, eq, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not name.strip() or not vals:
            raise SgbenchError(f"Expected --grid NAME=V1,V2,... (e.g. gs=0,0.25,0.5) but got '{item}'")
        grid[name.strip().replace("-", "_")] = [_number(v) for v in vals]
    return grid


def _number(value: str) -> float | str:
    """'0.25' -> 0.25; schedules ('linear:0.2:0.8') and intervals stay strings for the method to parse."""
    try:
        return float(value)
    except ValueError:
        return value


def _show(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _cell_name(method: str, params: dict, seed: int) -> str:
    def show(v) -> str:
        return _show(v).replace(":", "_").replace("/", "_").replace(",", "_")

    parts = [method.replace("+", "_")] + [f"{k}{show(v)}" for k, v in params.items()]
    return "-".join(parts + [f"seed{seed}"])


def plan_sweep(
    out: str | Path,
    *,
    method: str = "sg",
    grid: dict[str, Sequence] | None = None,   # parameter -> values; the cells are their product
    fixed: dict | None = None,                 # parameters held constant in every cell
    sparsity: Sequence[float] = (),            # extra cells: sg at w = 1 with gs = gamma (Fig. 4)
    seeds: Sequence[int] = (0,),
) -> list[Cell]:
    """The sweep's cells in order, each validated by `build_guidance`; invalid ones carry `skip`."""
    from sgbench.core.guidance import build_guidance

    out = Path(out)
    grid, fixed = dict(grid or {}), dict(fixed or {})
    if not grid and not sparsity:
        raise SgbenchError("Expected a grid (--grid NAME=V1,V2,...) or --sparsity values; the sweep is empty")
    overlap = set(grid) & set(fixed)
    if overlap:
        raise SgbenchError(f"Parameters {sorted(overlap)} are both swept and fixed; give each once")
    _check_values(method, grid, fixed)
    combos = [dict(zip(grid, vs)) for vs in itertools.product(*grid.values())] if grid else []
    specs = [(method, {**fixed, **c}) for c in combos]
    for g in sparsity:
        g = float(g)
        specs.append(("sg", {"scale": 1.0, "gs": g, "gw": round((1 + g) / 2, 6)}))
    cells, seen = [], set()
    for name, params in specs:
        try:
            build_guidance(name, **params)
            skip = None
        except SgbenchError as e:
            skip = str(e)
        for seed in seeds:
            cell = Cell(name, params, int(seed), out / _cell_name(name, params, int(seed)), skip)
            if cell.out not in seen:
                seen.add(cell.out)
                cells.append(cell)
    return cells


def _check_values(method: str, grid: dict[str, Sequence], fixed: dict) -> None:
    """Every value parses as its parameter (a number, a schedule, an interval), through the registry's
    parsing: a typo refuses the whole sweep, where a valid value in an invalid combination (sg's
    gs >= gw) only skips its cells. Names the method does not take are left to `build_guidance`."""
    from sgbench.core.guidance.base import REGISTRY, parse_param, option_name

    if method not in REGISTRY:
        return  # build_guidance names the methods
    fields = {f.name: f for f in dataclasses.fields(REGISTRY[method])}
    given = [(name, v, f"--grid {name}={','.join(map(_show, values))}") for name, values in grid.items() for v in values]
    given += [(name, v, f"{option_name(name)} {v}") for name, v in fixed.items()]
    for name, value, where in given:
        if name in fields:
            try:
                parse_param(method, fields[name], value)
            except SgbenchError as e:
                raise SgbenchError(f"{e} (in {where}); no cell was run") from None


def check_writable(folder: Path, what: str) -> None:
    """Fail now, not after the first cell, when `folder` cannot be created and written: a temporary file
    in the nearest existing folder above it (or in it) must be possible (root ignores permission bits,
    so trying beats os.access). Nothing is left behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    else:
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as e:
            problem = f"{existing}: {e.strerror or e}"
    if problem:
        raise SgbenchError(f"Cannot write {what} to {folder} ({problem}); choose another folder")


@dataclass
class SweepLog:
    """What happened to each cell (for the CLI and tests)."""

    ran: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)  # already finished, not redone
    skipped: list[tuple[Cell, str]] = field(default_factory=list)


def run_sweep(
    checkpoint: str | Path,                 # main model
    out: str | Path,                        # one run directory per cell is made under it
    *,
    ref: str,                               # reference statistics name (reference_stats/manifest.json) or npz
    extractor: str = "animal",
    method: str = "sg",
    grid: dict[str, Sequence] | None = None,
    fixed: dict | None = None,
    sparsity: Sequence[float] = (),
    seeds: Sequence[int] = (0,),
    guide: str | Path | None = None,        # guide checkpoint (ag, ag+sg)
    num: int = 100,
    batch_size: int = 100,
    steps: int = 40,
    solver: str = "euler",
    device: str = "cpu",
    progress: bool = True,
    log: SweepLog | None = None,            # filled in with what ran, what was finished, what was skipped
    figures: str | Path | None = None,      # where the caller will plot: checked writable before the first cell
    echo: Callable[[str], None] = lambda s: None,
) -> list[Path]:
    """Sample and evaluate every valid, unfinished cell; returns the run directories of all valid cells."""
    log = log if log is not None else SweepLog()
    evaluation = Evaluation(extractor=extractor, ref=str(ref))
    cells = plan_sweep(out, method=method, grid=grid, fixed=fixed, sparsity=sparsity, seeds=seeds)
    todo = [c for c in cells if c.skip is None]
    configs = [SampleConfig(checkpoint=str(checkpoint), out=str(c.out), guidance=c.method, guidance_params=c.params,
                            guide=str(guide) if guide else None, num=num, batch_size=batch_size, steps=steps, solver=solver,
                            seed=c.seed, device=device) for c in todo]
    check_jobs(configs, evaluation)
    if figures is not None:
        check_writable(Path(figures), "the figures (--figures)")
    for k, (cell, config) in enumerate(zip(todo, configs), 1):
        done = sample_and_evaluate(config, evaluation, progress=progress)
        (log.resumed if done == "kept" else log.ran).append(cell.out)
        echo(f"[{k}/{len(todo)}] {cell.out.name}" + (": finished, kept" if done == "kept" else ""))
    for cell in cells:
        if cell.skip is not None:
            log.skipped.append((cell, cell.skip))
            echo(f"skipped {cell.method} {cell.params}: {cell.skip}")
    return [c.out for c in todo]


@dataclass
class SweepReport:
    """What `sweep_and_plot` did: each cell's fate, the valid cells' run directories, their leaderboard
    (rendered as a table) and the figures written."""

    log: SweepLog
    dirs: list[Path]
    table: str
    figures: list[Path]


def summary(log: SweepLog) -> str:
    return f"{len(log.ran)} cells run, {len(log.resumed)} already finished, {len(log.skipped)} skipped as invalid"


def sweep_and_plot(
    checkpoint: str | Path,
    out: str | Path,
    *,
    ref: str,
    extractor: str = "animal",
    method: str = "sg",
    grid: dict[str, Sequence] | None = None,
    fixed: dict | None = None,
    sparsity: Sequence[float] = (),
    seeds: Sequence[int] = (0,),
    guide: str | Path | None = None,
    num: int = 100,
    batch_size: int = 100,
    steps: int = 40,
    solver: str = "euler",
    device: str = "cpu",
    figures: str | Path | None = None,      # default OUT/figures
    echo: Callable[[str], None] = lambda s: None,
) -> SweepReport:
    """`sgbench sweep`: run the sweep (`run_sweep`, same arguments), echo what happened to its cells, then
    make its leaderboard and the figures its cells support (Fig. 4, 6, A1). A sweep whose every cell is
    invalid is an error, raised after the reasons were echoed."""
    from sgbench.evaluation.reference import reference_name
    from sgbench.results import leaderboard, load_runs, render
    from sgbench.results.plots import plot_sweep

    log = SweepLog()
    figures = Path(figures) if figures is not None else Path(out) / "figures"
    dirs = run_sweep(checkpoint, out, ref=ref, extractor=extractor, method=method, grid=grid, fixed=fixed, sparsity=sparsity,
                     seeds=seeds, guide=guide, num=num, batch_size=batch_size, steps=steps, solver=solver, device=device,
                     log=log, figures=figures, echo=echo)
    echo(summary(log))
    if not dirs:
        raise SgbenchError("Every cell of the sweep was invalid; see the reasons above")
    board = leaderboard(load_runs(dirs, extractor=extractor, reference=reference_name(ref)))
    written = plot_sweep(dirs, figures, extractor=extractor, reference=reference_name(ref))
    return SweepReport(log, dirs, render(board, "table"), written)

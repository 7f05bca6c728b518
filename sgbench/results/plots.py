"""Figures from run directories (matplotlib, Agg backend; PNG). QUALITY is the board's primary column:
`fd` on a class board, `geneval` on a text-to-image board (each board gets its own figures).

    sparsity_<backbone>.png      quality against sparsity without guidance (the paper's Fig. 4): sg at w = 1
                                 (only the strong branch runs, at gs), and `unguided` at gs = 0
    QUALITY_heatmap_<backbone>.png    quality over (gs, gw), one panel per scale w (the paper's Fig. 6)
    throughput_<backbone>.png    measured images/s over (gs, gw), one panel per w (the paper's Fig. A1)
    <method>_<param>_<backbone>.png   quality against the one parameter a non-sg sweep varies (e.g. cfg's w)
    pareto.png                   `sgbench tune`: quality (95% intervals) against GFLOPs per image of the tuned settings

Values come from `sgbench.results` (runs read, never re-run; seeds averaged). Cells with no run
(invalid gs >= gw, or not run) are left blank; every other cell shows its number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sgbench.results.leaderboard import Leaderboard, Row, leaderboard
from sgbench.results.records import COLUMNS, load_runs


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s.split(" (")[0]).strip("-") or "model"


def _const(value) -> float | None:
    """A parameter as a number; None for schedules, which do not fit a heatmap axis."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------------
# Fig. 6 and Fig. A1: heatmaps over (gs, gw), one panel per scale


def _heatmap(rows: list[Row], metric: str, title: str, label: str, path: Path, *, lower_better: bool) -> Path:
    import numpy as np

    plt = _plt()
    scales = sorted({float(r.params["scale"]) for r in rows})
    gss = sorted({_const(r.params["gs"]) for r in rows})
    gws = sorted({_const(r.params["gw"]) for r in rows})
    fig, axes = plt.subplots(1, len(scales), figsize=(0.9 * len(gws) * len(scales) + 2.5, 0.6 * len(gss) + 2.2),
                             squeeze=False, layout="constrained")
    values = [r.mean[metric] for r in rows if r.mean[metric] is not None]
    vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
    for k, (ax, w) in enumerate(zip(axes[0], scales)):
        grid = np.full((len(gss), len(gws)), np.nan)
        for r in rows:
            if float(r.params["scale"]) == w and r.mean[metric] is not None:
                grid[gss.index(_const(r.params["gs"])), gws.index(_const(r.params["gw"]))] = r.mean[metric]
        im = ax.imshow(grid, cmap="viridis_r" if lower_better else "viridis", vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
        best = np.nanmin(grid) if lower_better else np.nanmax(grid)
        for i, j in zip(*np.where(~np.isnan(grid))):
            v = grid[i, j]
            r, g, b, _ = im.cmap(im.norm(v))
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8, fontweight="bold" if v == best else "normal",
                    color="k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "w")  # readable on the cell's colour
        ax.set_xticks(range(len(gws)), [f"{g:g}" for g in gws])
        ax.set_yticks(range(len(gss)), [f"{g:g}" for g in gss])
        ax.set_xlabel("gw (gamma_weak)")
        if k == 0:
            ax.set_ylabel("gs (gamma_strong)")
        ax.set_title(f"w = {w:g}")
    fig.colorbar(im, ax=axes[0].tolist(), label=label)
    fig.suptitle(title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------
# Line plots: Fig. 4 (FD against sparsity without guidance) and one-parameter sweeps


def _line(series: dict[str, list[tuple[float, Row]]], xlabel: str, title: str, metric: str, ylabel: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, pts in series.items():
        pts = sorted(pts, key=lambda p: p[0])
        xs, ys = [p[0] for p in pts], [p[1].mean[metric] for p in pts]
        errs = [p[1].std[metric] or 0.0 for p in pts]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=name)
        for x, (_, r) in zip(xs, pts):
            if r.mean["gflops_step"] is not None:
                ax.annotate(f"{r.mean['gflops_step']:.3g} GFLOPs/step", (x, r.mean[metric]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _varying(rows: list[Row]) -> list[str]:
    keys = {k for r in rows for k in r.params}
    return sorted(k for k in keys if len({str(r.params.get(k)) for r in rows}) > 1)


def plot_leaderboard(board: Leaderboard, out_dir: str | Path) -> list[Path]:
    """Every figure the leaderboard's rows support (see the module docstring), over the board's primary
    quality (FD on a class board, GenEval on a text-to-image one); returns the PNG paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metric, header = board.quality, board.header(board.quality)
    lower_better = COLUMNS[metric].better < 0
    ylabel = f"{header} ({'lower' if lower_better else 'higher'} is better)"
    what = f"{header} vs '{board.reference}'" if board.kind == "class" else header
    written: list[Path] = []
    for backbone in sorted({r.backbone for r in board.rows}):
        rows = [r for r in board.rows if r.backbone == backbone and r.mean[metric] is not None]
        slug = _slug(backbone)
        sparse = [(float(_const(r.params["gs"])), r) for r in rows if r.method == "sg" and float(r.params["scale"]) == 1.0
                  and _const(r.params["gs"]) is not None]
        if sparse:
            sparse += [(0.0, r) for r in rows if r.method == "unguided"]
            written.append(_line({backbone: sparse}, "gs: fraction of tokens dropped (no guidance)",
                                 f"Quality vs sparsity without guidance\n{backbone}, {what}", metric, ylabel, out / f"sparsity_{slug}.png"))
        sg = [r for r in rows if r.method == "sg" and float(r.params["scale"]) != 1.0
              and _const(r.params["gs"]) is not None and _const(r.params["gw"]) is not None]
        if sg:
            written.append(_heatmap(sg, metric, f"Sparse guidance: {what} over (gs, gw)\n{backbone}", header,
                                    out / f"{metric}_heatmap_{slug}.png", lower_better=lower_better))
            if any(r.mean["images_per_s"] is not None for r in sg):
                written.append(_heatmap(sg, "images_per_s", f"Sparse guidance: throughput over (gs, gw)\n{backbone}",
                                        "images/s (measured)", out / f"throughput_{slug}.png", lower_better=False))
        for method in sorted({r.method for r in rows} - {"sg", "unguided"}):
            mrows = [r for r in rows if r.method == method]
            varying = _varying(mrows)
            if len(mrows) > 1 and len(varying) == 1 and all(_const(r.params[varying[0]]) is not None for r in mrows):
                p = varying[0]
                written.append(_line({method: [(float(_const(r.params[p])), r) for r in mrows]}, p,
                                     f"{method}: {what} against {p}\n{backbone}", metric, ylabel,
                                     out / f"{_slug(method)}_{p}_{slug}.png"))
    return written


BOARD_NAMES = {"class": "class-conditional", "t2i": "text-to-image"}


@dataclass
class Figures:
    """What `plot_boards` drew: the PNG files, and one line per board that supports no figure."""

    written: list[Path]
    missing: list[str]


def plot_boards(boards: list[Leaderboard], out_dir: str | Path) -> Figures:
    """The figures of every board (class and text-to-image runs each get their own); a board whose runs
    support none is named in `missing` with the reason, never skipped silently."""
    written, missing = [], []
    for board in boards:
        drawn = plot_leaderboard(board, out_dir)
        written += drawn
        if not drawn:
            name = BOARD_NAMES.get(board.kind, board.kind)
            missing.append(f"No figure for the {name} board ({len(board.rows)} configurations): a figure needs, within one "
                           f"backbone and with {board.header(board.quality)} measured, sg at w = 1 over gs (Fig. 4), sg at "
                           "w != 1 over (gs, gw) (Fig. 6, A1), or two or more runs of another method that differ in one "
                           "numeric parameter")
    return Figures(written, missing)


def plot_sweep(run_dirs: Iterable[str | Path], out_dir: str | Path, *, extractor: str | None = None,
               reference: str | None = None) -> list[Path]:
    """Figures (Fig. 4, 6, A1 where the runs support them) from run directories into out_dir."""
    return plot_leaderboard(leaderboard(load_runs(run_dirs, extractor=extractor, reference=reference)), out_dir)


# ----------------------------------------------------------------------------------------------------
# `sgbench tune`: quality against cost of each method's tuned setting, one series per GFLOPs budget


def plot_pareto(boards: dict[str, Leaderboard], path: str | Path) -> Path | None:
    """Quality (with its 95% interval) against analytic GFLOPs per image of every row of the tuned boards
    (budget name -> board), one panel per backbone, one colour per budget, each point labelled by its
    method (the full setting is in the leaderboard); the boards' Pareto rows are filled, the others hollow.
    Returns the PNG path, or None when no row has both numbers."""
    points = {name: [r for r in b.rows if r.mean[b.quality] is not None and r.mean["gflops_image"] is not None]
              for name, b in boards.items()}
    if not any(points.values()):
        return None
    first = next(iter(boards.values()))
    metric, header = first.quality, first.header(first.quality)
    backbones = list(dict.fromkeys(r.backbone for rows in points.values() for r in rows))
    plt = _plt()
    fig, axes = plt.subplots(1, len(backbones), figsize=(4.6 * len(backbones), 4.2), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        for k, (name, rows) in enumerate(points.items()):
            color, shown = f"C{k}", False
            for r in (r for r in rows if r.backbone == backbone):
                y, ci = r.mean[metric], r.interval(metric)
                yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
                ax.errorbar([r.mean["gflops_image"]], [y], yerr=yerr, fmt="o", color=color, capsize=3,
                            mfc=color if r.pareto else "white", label=None if shown else name)
                ax.annotate(r.method, (r.mean["gflops_image"], y), textcoords="offset points", xytext=(4, 2 - 9 * k),
                            fontsize=7, color=color)
                shown = True
        ax.set_title(backbone.split(" (")[0], fontsize=9)
        ax.set_xlabel("GFLOPs per image (analytic, as executed)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{header} ({'lower' if COLUMNS[metric].better < 0 else 'higher'} is better; 95% interval)")
    axes[0][0].legend(title="budget", fontsize=8)
    fig.suptitle("Tuned settings: quality against cost (filled: Pareto front)", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------
# Training: the attribute-swap probe over steps (sgbench.evaluation.probe)


def plot_probe_curve(train_log: str | Path, path: str | Path) -> Path | None:
    """Each probe attribute's score against the training step, from train_log.jsonl's probe lines (0.5:
    the word is ignored; 1: the true caption always wins). Returns the PNG path, or None without probes."""
    import json

    probes = []
    for line in Path(train_log).read_text().splitlines():
        entry = json.loads(line) if line.strip() else {}
        if "probe" in entry:
            probes.append((entry["step"], entry["probe"]))
    if not probes:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    steps = [s for s, _ in probes]
    for k, attribute in enumerate(probes[-1][1]):
        ax.plot(steps, [p.get(attribute) for _, p in probes], marker="o", ms=3, color=f"C{k}", label=attribute)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0.4, 1.0)
    ax.set_xlabel("training step")
    ax.set_ylabel("true caption preferred (0.5: ignored)")
    ax.set_title("Attribute-swap probe of the EMA model")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path

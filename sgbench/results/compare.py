"""`sgbench compare` as one library call: run directories -> one leaderboard per kind of run (class,
text-to-image), rendered, optionally written to a file, plotted, saved as a baseline and gated.

    result = compare_runs(["runs/bench"], fmt="markdown", plots="figures", baseline="baselines/bench-quick.json")
    print(result.text, end="")               # every board, class first (the caller prints; nothing here does)
    for line in result.notes: print(line)    # what was written, and boards that have no figure
    exit(0 if result.gate is None or result.gate.ok else 1)

Class and text-to-image runs never share a table (docs/design.md, "Bench"): each kind is its own board,
and the gate and a saved baseline cover every board.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_write_text
from sgbench.results.gate import GateResult, check_baseline, parse_tolerances, read_baseline, save_baseline
from sgbench.results.leaderboard import Leaderboard, kinds, leaderboard
from sgbench.results.pairing import check_against, pair_board
from sgbench.results.paper import PaperTable, reference_tables
from sgbench.results.records import COLUMNS, PRIMARY, Loaded, column_key, load_runs
from sgbench.results.render import check_format, render


@dataclass
class Comparison:
    """What `compare_runs` made; the caller prints `text` (unless it went to `file`), `notes` and the gate."""

    boards: list[Leaderboard]          # one per kind of run, class first
    text: str                          # every board rendered in the asked format, joined by a blank line
    file: Path | None                  # where `text` was written instead of being printed
    notes: list[str]                   # one line each: rows left unpaired and why, files and figures written, boards without a figure
    gate: GateResult | None            # the regression gate's verdict when a baseline was given


def boards_of(loaded: Loaded, *, sort: str | None = None, reverse: bool = False) -> list[Leaderboard]:
    """One leaderboard per kind of run present, sorted by `sort` (default: each kind's primary quality),
    best first, or worst first with `reverse`."""
    boards = []
    for kind in kinds(loaded):
        sort_key = column_key(sort or PRIMARY[kind])
        boards.append(leaderboard(loaded, kind=kind, sort=sort_key, descending=COLUMNS[sort_key].better < 0 if reverse else None))
    return boards


def paper_block(reference: str | None, board: Leaderboard) -> list[PaperTable] | None:
    """The paper's tables that belong beside `board` (`--reference paper[:N,M]`), or None."""
    if not reference:
        return None
    return reference_tables(reference, masking=any(r.sparsity == "masking" for r in board.rows),
                            inception=board.extractor == "inception", text=board.kind == "t2i")


def gate_against(boards: Leaderboard | list[Leaderboard], baseline: str | Path,
                 tolerances: dict[str, float | str] | None = None) -> GateResult:
    """The regression gate of `boards` against the baseline file (tolerances given here override its own)."""
    return check_baseline(boards, read_baseline(baseline), tolerances or {})


def write_leaderboard(text: str, path: str | Path) -> Path:
    """Write the rendered leaderboard to `path` (atomically; folders made as needed)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as e:
        raise SgbenchError(f"Cannot write {path}: {e.strerror or e}") from None
    return path


def compare_runs(
    runs: Iterable[str | Path],              # run directories, or folders of run directories
    *,
    sort: str | None = None,                 # a column name or alias; default each kind's primary quality
    reverse: bool = False,                   # worst first
    fmt: str = "table",                      # table, markdown, csv or json
    file: str | Path | None = None,          # write the leaderboard here instead of returning it for printing
    ref: str | None = None,                  # reference whose metrics to show (default: the baseline's, else the most common)
    extractor: str | None = None,            # extractor whose metrics to show (default as for ref)
    baseline: str | Path | None = None,      # gate against this baseline file
    tolerances: Sequence[str] = (),          # METRIC=VALUE or METRIC=N%, overriding the baseline's
    save_baseline_to: str | Path | None = None,
    plots: str | Path | None = None,         # folder for every figure the boards support
    reference: str | None = None,            # 'paper' or 'paper:N,M': the paper's rows beside the runs
    against: str | None = None,              # the row (method label) every row is paired with; default each backbone's best
) -> Comparison:
    """The leaderboards of run directories: quality with 95% intervals next to cost, paired differences to a
    reference row where the runs pair (docs/design.md, "Paired comparisons"), tiers, Pareto front,
    plus whatever was asked besides (file, figures, baseline, gate). Every input is checked (format,
    tolerances, baseline file) before any run is read."""
    from sgbench.results.plots import plot_boards

    check_format(fmt)
    tolerance = parse_tolerances(tolerances)
    base = read_baseline(baseline) if baseline else None
    if base is not None:
        extractor, ref = extractor or base.get("extractor"), ref or base.get("reference")
    boards = boards_of(load_runs(runs, extractor=extractor, reference=ref), sort=sort, reverse=reverse)
    check_against(boards, against)
    notes = [note for b in boards for note in pair_board(b, against=against)]  # before rendering: the paired column and tiers
    text = "\n".join(render(b, fmt, paper=paper_block(reference, b)) for b in boards)
    configurations, broken = sum(len(b.rows) for b in boards), sum(len(b.problems) for b in boards)
    if file:
        file = write_leaderboard(text, file)
        notes.append(f"Wrote {file} ({configurations} configurations, {broken} broken or partial runs)")
    if plots:
        figures = plot_boards(boards, plots)
        notes += [f"Wrote {p}" for p in figures.written] + figures.missing
    if save_baseline_to:
        save_baseline(boards, save_baseline_to, tolerance)
        notes.append(f"Wrote baseline {save_baseline_to} ({configurations} configurations)")
    gate = check_baseline(boards, base, tolerance) if base is not None else None
    return Comparison(boards, text, Path(file) if file else None, notes, gate)

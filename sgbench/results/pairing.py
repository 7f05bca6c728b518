"""Paired comparisons on a board (docs/design.md, "Paired comparisons"): each row's difference to a
reference row of its backbone on the board's primary metric, with a paired bootstrap interval and p-value,
and tiers from Holm's step-down on those differences when every row pairs.

Every run of a board draws sample i's noise, label and token selections from the same per-sample streams,
so two runs with the same seed, sample count and labels pair sample by sample. A replicate draws ONE set of
sample indices (`bootstrap.Draws`, seed PAIRED_SEED) and evaluates every run on it against the fixed
reference statistics. Class boards pair on FD from the per-sample features `eval fid` stores
(RUN/evaluation/<extractor>.npz); text boards on GenEval from each image's verdict (RUN/evaluation/<judge>.npz,
written by `eval geneval` and `ingest geneval`), the draws stratified by task exactly as GenEval's own
interval (`bootstrap.stratified_replicates`: the same task sizes give the same draws in every run). Rows
without per-sample data (runs evaluated before, or several seeds in a row) keep the board exactly as before
and are named in a note.
"""

from __future__ import annotations

import numpy as np

from sgbench.evaluation import bootstrap
from sgbench.evaluation.metrics import REGISTRY
from sgbench.evaluation.npz import read_labels
from sgbench.evaluation.paired import check_pairable, paired_difference, paired_tiers, read_per_sample
from sgbench.results.leaderboard import Leaderboard, Row
from sgbench.results.records import COLUMNS, PRIMARY
from sgbench.runs.rundir import RunDir
from sgbench.utils.errors import SgbenchError

PAIRED_SEED = 0  # the seed of the draws every run of a comparison is resampled with


def _row_data(row: Row, board: Leaderboard) -> tuple[dict, np.ndarray | dict, str | None] | str:
    """(conditions, per-sample data, the reference build the row's FD used) of a row, or why it has none.
    Class rows: the features; text rows: {task: each image's verdict, in sample order}."""
    if row.n != 1:
        return f"it averages {row.n} seeds (a paired comparison pairs single runs)"
    run = RunDir(row.runs[0])
    text = board.kind == "t2i"
    record = REGISTRY[PRIMARY[board.kind]].find(run.metrics(), "" if text else board.extractor or "", "" if text else board.reference or "")
    name = record.extractor if record is not None else ""
    arrays = None if record is None else read_per_sample(run.path, name, weights_sha256=record.weights_sha256,
                                                         samples_sha256=record.samples_sha256)
    if arrays is None or ("task" if text else "features") not in arrays:
        again = f"sgbench eval geneval {run.path}" if text else f"sgbench eval fid {run.path} --ref {board.reference}"
        return f"no per-sample {'verdicts' if text else 'features'} of its samples (evaluated before paired comparisons, or stale): {again}"
    conditions = {"seed": np.asarray([row.seeds[0]])}
    if text:
        from sgbench.evaluation.geneval.rules import correct_by_task
        from sgbench.text.prompts import run_prompts

        _, index, prompt_set = run_prompts(run)
        conditions.update({"prompts": index, "prompt set": np.asarray([prompt_set]), "judge": np.asarray([name])})
        verdicts = [{"tag": str(t), "correct": bool(c)} for t, c in zip(arrays["task"], arrays["correct"])]
        return conditions, correct_by_task(verdicts), None
    labels = read_labels(run.samples)
    conditions["sample count"] = np.asarray([len(arrays["features"])])
    if labels is not None:
        conditions["labels"] = labels
    return conditions, arrays["features"], (record.options or {}).get("reference_created")


def _matches(row: Row, against: str) -> bool:
    return row.label == against or row.method == against


def _reference_row(rows: list[Row], against: str | None, data: dict, metric: str) -> Row | None:
    """The row the others are compared with: `against` (its label, or a method with one row), else the best
    row that has per-sample data."""
    if against is None:
        usable = [r for r in rows if not isinstance(data[r.key], str) and r.mean[metric] is not None]
        return min(usable, key=lambda r: COLUMNS[metric].better * -r.mean[metric], default=None)
    found = [r for r in rows if r.label == against] or [r for r in rows if r.method == against]
    if len(found) > 1:
        raise SgbenchError(f"--against '{against}' matches {len(found)} rows of {rows[0].backbone} "
                           f"({', '.join(r.label for r in found)}); give one row's full label")
    return found[0] if found else None


def pair_board(board: Leaderboard, *, against: str | None = None,
               replicates: int = bootstrap.DEFAULT_REPLICATES) -> list[str]:
    """Set each row's `paired` (its difference to the reference row of its backbone) and, when every row of
    the board pairs, its tier from the paired comparisons. Returns one note per row left unpaired, and why.
    A board whose runs carry no per-sample data is left unchanged. With `against`, a reference row that
    cannot be paired is an error."""
    metric = PRIMARY[board.kind]
    data = {r.key: _row_data(r, board) for r in board.rows}
    if against is None and all(isinstance(d, str) for d in data.values()):
        return []
    reference = None
    if board.kind == "class":
        from sgbench.evaluation.reference import load_reference  # here: only boards with per-sample data load the statistics

        try:
            reference = load_reference(board.reference)
        except SgbenchError as e:
            if against is not None:
                raise
            return [f"No paired comparisons on the {board.fd_header} board: {e}"]
        for key, d in data.items():
            if not isinstance(d, str) and d[2] not in (None, reference.entry.created):
                data[key] = f"its FD was computed against an older build of '{board.reference}': re-evaluate it"

    replicated: dict[str, np.ndarray] = {}

    def replicates_of(row: Row) -> np.ndarray:
        """The row's bootstrap replicates of the metric; rows that pair share every draw."""
        if row.key not in replicated:
            per_sample = data[row.key][1]
            if reference is None:  # GenEval: the mean over tasks of each task's mean, drawn within tasks
                replicated[row.key] = bootstrap.stratified_replicates(per_sample, replicates)[1]
            else:
                draws = bootstrap.Draws(len(per_sample), replicates, seed=PAIRED_SEED)
                replicated[row.key] = bootstrap.fd_replicates(per_sample, reference.mu, reference.sigma, draws)
        return replicated[row.key]

    notes, all_paired = [], True
    for backbone in dict.fromkeys(r.backbone for r in board.rows):
        rows = [r for r in board.rows if r.backbone == backbone]
        base = _reference_row(rows, against, data, metric)
        if base is None:
            all_paired = False
            if against is not None:
                notes.append(f"{backbone}: not paired: no row '{against}'")
            continue
        if isinstance(data[base.key], str):
            if against is not None:
                raise SgbenchError(f"Cannot pair with --against '{against}' ({base.runs[0]}): {data[base.key]}")
            all_paired = False
            continue
        paired_with_base = []
        for row in rows:
            why = data[row.key]
            if isinstance(why, str):
                notes.append(f"{row.label} ({backbone}): not paired with {base.label}: {why}")
                continue
            try:
                check_pairable(row.label, why[0], base.label, data[base.key][0])
            except SgbenchError as e:
                notes.append(f"{row.label} ({backbone}): not paired: {e}")
                continue
            d = paired_difference(row.mean[metric], base.mean[metric], replicates_of(row), replicates_of(base))
            row.paired = {"against": base.label, "metric": metric, "delta": d.delta, "lo": d.lo, "hi": d.hi, "p": d.p_value}
            paired_with_base.append(row)
        others = [r for r in rows if r is not base and not isinstance(data[r.key], str)]
        if against is not None and others and paired_with_base == [base]:
            raise SgbenchError(f"Cannot pair with --against '{against}' ({base.runs[0]}): no other row of {backbone} shares its "
                               "seed, sample count and labels")
        if paired_with_base == [base]:
            base.paired = None  # a reference that nothing pairs with is no comparison
        all_paired = all_paired and len(paired_with_base) == len(rows)
    if any(r.paired for r in board.rows):
        board.paired_metric = metric
    if all_paired and board.paired_metric and board.sort == metric:
        for backbone in dict.fromkeys(r.backbone for r in board.rows):
            rows = [r for r in board.rows if r.backbone == backbone]
            tiers = paired_tiers([r.mean[metric] for r in rows], [replicates_of(r) for r in rows],
                                 lower_is_better=COLUMNS[metric].better < 0)
            for r, tier in zip(rows, tiers):
                r.tier = tier
        board.tier_rule = "paired"
    return notes


def check_against(boards: list[Leaderboard], against: str | None) -> None:
    """Refuse an --against that names no row of any board, listing the labels it may name."""
    if against is None or any(_matches(r, against) for b in boards for r in b.rows):
        return
    labels = list(dict.fromkeys(r.label for b in boards for r in b.rows))
    raise SgbenchError(f"Expected --against to name a row by its method label ({', '.join(labels) or 'no rows'}) "
                       f"but got '{against}'")

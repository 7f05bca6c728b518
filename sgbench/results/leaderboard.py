"""Leaderboard: records grouped by configuration, each number with its 95% interval, tiers of rows that
cannot be told apart, and the Pareto front of quality against cost (docs/design.md, "Error bars").

A row's interval is the bootstrap interval of its run (one seed), or with several seeds the 95%
t-interval of the mean across seeds (their spread). Two rows are indistinguishable when their intervals
overlap; the table groups rows into tiers (tier 1: every row indistinguishable from the best one, then
the same from the best row left), and the Pareto front treats an indistinguishable FD as equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from sgbench.results.records import COLUMNS, PRIMARY, Loaded, Problem, RunRecord, column_key

# t_{0.975, n-1} for the interval of a mean over n seeds (n = 2..30); beyond, the normal 1.96.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045]


@dataclass
class Row:
    backbone: str
    label: str
    key: str
    method: str
    params: dict
    n: int
    seeds: list[int]
    mean: dict[str, float | None]
    std: dict[str, float | None]               # sample std (ddof 1) over seeds; None for n = 1
    ci95: dict[str, list[float] | None]        # bootstrap (n = 1) or across-seed t-interval (n > 1)
    runs: list[str]
    pareto: bool = False
    tier: int | None = None                    # rows of one tier are indistinguishable in the sorted metric
    sparsity: str = "dense"                    # of the backbone: routing, masking or dense
    paired: dict | None = None                 # {against, metric, delta, lo, hi, p}: paired difference to a reference row

    def interval(self, key: str) -> list[float] | None:
        return self.ci95.get(key)


@dataclass
class Leaderboard:
    rows: list[Row]
    problems: list[Problem]
    extractor: str | None
    reference: str | None
    sort: str = "fd"
    columns: list[str] = field(default_factory=list)  # shown: those any row has a value for
    kind: str = "class"  # 'class' (FD, ...) or 't2i' (GenEval, HPSv3, CLIP): never mixed in one board
    paired_metric: str | None = None  # the metric of the rows' paired differences, when any row has one
    tier_rule: str = "overlap"  # 'overlap' (intervals overlap the tier's best) or 'paired' (Holm on paired differences)

    @property
    def quality(self) -> str:
        """The column the Pareto front trades against cost."""
        return PRIMARY[self.kind]

    @property
    def fd_header(self) -> str:
        return "FID" if self.extractor == "inception" else "FD"

    def header(self, key: str) -> str:
        return self.fd_header if key == "fd" else COLUMNS[key].header


def _aggregate(records: list[RunRecord]) -> Row:
    first = records[0]
    mean, std, ci = {}, {}, {}
    for k in COLUMNS:
        xs = [r.values.get(k) for r in records if r.values.get(k) is not None]
        mean[k] = sum(xs) / len(xs) if xs else None
        std[k] = math.sqrt(sum((x - mean[k]) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        if len(xs) == 1:
            ci[k] = next((r.ci95.get(k) for r in records if r.values.get(k) is not None), None)
        elif len(xs) > 1:
            half = (_T975[len(xs) - 2] if len(xs) <= 30 else 1.96) * std[k] / math.sqrt(len(xs))
            ci[k] = [mean[k] - half, mean[k] + half]
        else:
            ci[k] = None
    return Row(first.backbone, first.label, first.key, first.method, first.params, len(records),
               sorted(r.seed for r in records), mean, std, ci, [str(r.path) for r in records], sparsity=first.sparsity)


def overlap(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two intervals overlap (no interval: only equal points are indistinguishable)."""
    if a is None or b is None:
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def _quality(row: Row, key: str) -> tuple[float, list[float] | None]:
    """(value, interval) made 'lower is better' for the Pareto rule."""
    value, ci = row.mean[key], row.ci95.get(key)
    if COLUMNS[key].better > 0:
        return -value, None if ci is None else [-ci[1], -ci[0]]
    return value, ci


def pareto_front(rows: list[Row], quality: str = "fd", cost: str = "gflops_image") -> list[bool]:
    """Rows walked from the cheapest up: a row joins the front unless a front row that costs no more is
    not worse in quality (better, or indistinguishable: overlapping intervals) and is cheaper or better.
    Walking by cost keeps the rule well defined although "indistinguishable" is not transitive; without
    intervals it is the plain front (<= in both, < in one; equal points both stay)."""
    points = [(*_quality(r, quality), r.mean[cost]) for r in rows]
    on = [False] * len(rows)
    front: list[tuple] = []
    for i in sorted(range(len(rows)), key=lambda i: (points[i][2], points[i][0])):
        pv, pi, pc = points[i]

        def excludes(q) -> bool:
            qv, qi, qc = q
            indistinguishable = qv == pv or overlap(qi, pi)
            return qc <= pc and (qv <= pv or indistinguishable) and (qc < pc or qv < pv)

        if not any(excludes(q) for q in front):
            on[i] = True
            front.append(points[i])
    return on


def assign_tiers(rows: list[Row], key: str) -> None:
    """Rows sorted best first: tier 1 holds every row whose interval overlaps the best row's; the next
    tier starts at the first row that does not, and so on."""
    tier, leader = 0, None
    for r in rows:
        if r.mean[key] is None:
            r.tier = None
            continue
        if leader is None or not (r.mean[key] == leader.mean[key] or overlap(r.interval(key), leader.interval(key))):
            tier, leader = tier + 1, r
        r.tier = tier


def kinds(loaded: Loaded) -> list[str]:
    """The kinds of run among the records ('class' first), each of which gets its own board."""
    present = {r.kind for r in loaded.records}
    return [k for k in PRIMARY if k in present] or ["class"]


def leaderboard(loaded: Loaded, *, sort: str | None = None, descending: bool | None = None, kind: str = "class") -> Leaderboard:
    """Group runs of one kind by configuration (all but the seed), mark each backbone's Pareto front
    (the kind's primary quality against GFLOPs per image), sort by a column (default the primary; best
    first unless `descending` says otherwise), and put the rows of each backbone into tiers of
    indistinguishable values of the sorted column. Problems are listed on the class board, or on the
    only board there is."""
    sort = column_key(sort or PRIMARY[kind])
    quality = PRIMARY[kind]
    groups: dict[str, list[RunRecord]] = {}
    duplicates = []
    for r in loaded.records:
        if r.kind != kind:
            continue
        first = next((g for g in groups.get(r.key, []) if g.seed == r.seed), None)
        if first is not None:  # the same draw twice is one seed, not two with zero spread
            duplicates.append(Problem(Path(r.path), "duplicate", f"the same configuration and seed {r.seed} as {first.path}: "
                                      "counted once", r.key))
            continue
        groups.setdefault(r.key, []).append(r)
    rows = [_aggregate(rs) for rs in groups.values()]
    for backbone in {r.backbone for r in rows}:
        cand = [r for r in rows if r.backbone == backbone and r.mean[quality] is not None and r.mean["gflops_image"] is not None]
        for r, on in zip(cand, pareto_front(cand, quality=quality)):
            r.pareto = on
    if descending is None:
        descending = COLUMNS[sort].better > 0
    present = [r for r in rows if r.mean[sort] is not None]
    present.sort(key=lambda r: (r.mean[sort], r.key), reverse=descending)
    rows = present + sorted((r for r in rows if r.mean[sort] is None), key=lambda r: r.key)
    best_first = COLUMNS[sort].better > 0 if descending else COLUMNS[sort].better < 0
    for backbone in {r.backbone for r in rows}:
        mine = [r for r in rows if r.backbone == backbone]
        assign_tiers(mine if best_first else mine[::-1], sort)
    columns = [k for k in COLUMNS if any(r.mean[k] is not None for r in rows)]
    problems = (loaded.problems if kind == kinds(loaded)[0] else []) + duplicates
    return Leaderboard(rows, problems, loaded.extractor, loaded.reference, sort, columns, kind)

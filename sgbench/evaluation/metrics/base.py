"""What one metric declaration says (docs/design.md, "Metrics"): `Metric`, the readers that pick a metric's
record out of a run's metrics.json, and `Scorer`, the run adapter that writes those records.

Imports nothing heavy: sgbench.results builds every leaderboard column from these declarations, so a
scorer imports its evaluation code only when it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from sgbench.runs.rundir import MetricRecord, RunDir

BOARD_KINDS = ("class", "t2i")  # the FD board of class-conditional runs, the GenEval board of text runs
DIRECTIONS = ("lower", "higher")

# (a run's records of the samples on disk, the metric's name in metrics.json, the board's extractor,
# its reference) -> the record the column shows, or None
Reader = Callable[[list[MetricRecord], str, str, str], Optional[MetricRecord]]


@dataclass(frozen=True)
class Scoring:
    """What a scorer needs besides the run: the bench's evaluation settings and what the run was sampled with."""

    extractor: str       # class runs: the feature extractor ('animal', 'inception')
    ref: str             # class runs: the reference statistics (a name or an npz)
    num_samples: int
    prompts: str | None  # text runs: the prompts file the run was sampled from


@dataclass(frozen=True)
class Scorer:
    """A run adapter: one evaluation pass that writes some metrics of a run into its metrics.json (several
    metrics share one scorer when one pass computes them all)."""

    name: str
    is_scored: Callable[[RunDir, Scoring], bool]  # metrics.json holds its records of the samples on disk
    score: Callable[[RunDir, Scoring], None]


@dataclass(frozen=True)
class Metric:
    """One leaderboard metric: how it is shown, judged, gated, read from a run and computed for it."""

    key: str                 # the column: --sort, --tolerance, leaderboard.json, baselines
    header: str              # the table's column header
    better: str              # 'lower' or 'higher'
    fmt: str                 # the number's format spec (fixed decimals)
    help: str                # one line: what the number is (leaderboard.json's columns)
    boards: tuple[str, ...]  # the board kinds it is a column of: 'class', 't2i'
    read: Reader             # which of a run's records it shows
    stored: str = ""         # its name in metrics.json where that is not `key` ('fid' for 'fd')
    tolerance: float | str | None = None  # the gate's default: absolute, or relative as 'N%'; None: not gated
    aliases: tuple[str, ...] = ()         # other names --sort and --tolerance accept
    scorer: Scorer | None = None          # what the bench runs to compute it; None: only its own command does

    def __post_init__(self):
        if self.better not in DIRECTIONS:
            raise ValueError(f"Metric {self.key}: better must be one of {DIRECTIONS}, not {self.better!r}")
        if not self.boards or any(b not in BOARD_KINDS for b in self.boards):
            raise ValueError(f"Metric {self.key}: boards must be some of {BOARD_KINDS}, not {self.boards!r}")
        if self.tolerance is not None and not _valid_tolerance(self.tolerance):
            raise ValueError(f"Metric {self.key}: tolerance must be a number >= 0 or 'N%', not {self.tolerance!r}")
        if not self.stored:
            object.__setattr__(self, "stored", self.key)

    def find(self, records: list[MetricRecord], extractor: str, reference: str) -> MetricRecord | None:
        """Its record among a run's records, as its reader picks it (extractor, reference: the board's)."""
        return self.read(records, self.stored, extractor, reference)


def _valid_tolerance(value) -> bool:
    if isinstance(value, str):
        number = value[:-1] if value.endswith("%") else ""
        try:
            return math.isfinite(float(number)) and float(number) >= 0
        except ValueError:
            return False
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


# ----------------------------------------------------------------------------------------------------
# Readers


def _last(records: list[MetricRecord], keep: Callable[[MetricRecord], bool]) -> MetricRecord | None:
    found = [r for r in records if keep(r)]
    return found[-1] if found else None


def same_features(records: list[MetricRecord], name: str, extractor: str, reference: str) -> MetricRecord | None:
    """The record scored in the board's feature space against its reference (class boards: one extractor and
    one reference statistics per board)."""
    return _last(records, lambda r: r.metric == name and r.extractor == extractor and r.reference == reference)


def any_scorer(records: list[MetricRecord], name: str, extractor: str, reference: str) -> MetricRecord | None:
    """The last record of that name in metrics.json, whatever scored it (a scorer of text runs: HPSv3, CLIP)."""
    return _last(records, lambda r: r.metric == name)

"""The metric registry (docs/design.md, "Metrics"): every leaderboard metric declared once, in a file of this
package, and registered below. The rest is derived from it: the record columns and leaderboard columns
(sgbench.results.records), the sort keys and `compare --sort`'s help, the gate's default tolerances
(sgbench.results.gate), and what the bench computes for a run (sgbench.workflows.jobs).

    for metric in board_metrics("class"):
        record = metric.find(run.metrics(), extractor="animal", reference="animal-all")
"""

from __future__ import annotations

from sgbench.evaluation.metrics import clip, fid, geneval, geneval_images, hpsv3
from sgbench.evaluation.metrics.base import BOARD_KINDS, Metric, Scorer, Scoring

# Board kind -> its primary metric: the quality its Pareto front trades against cost and its default sort.
BOARDS = {"class": "fd", "t2i": "geneval"}


def register(*modules) -> dict[str, Metric]:
    """Key -> Metric over each module's METRICS, in this order (the leaderboards' column order); a key or alias
    registered twice is a programming error."""
    registry: dict[str, Metric] = {}
    names: set[str] = set()
    for module in modules:
        for metric in module.METRICS:
            for name in (metric.key, *metric.aliases):
                if name in names:
                    raise ValueError(f"Metric name '{name}' is registered twice (in {module.__name__})")
                names.add(name)
            registry[metric.key] = metric
    return registry


# One entry per metric file; the order is the leaderboards' column order.
REGISTRY = register(fid, geneval, geneval_images, hpsv3, clip)


def board_metrics(kind: str) -> list[Metric]:
    """The metrics a board of this kind ('class', 't2i') shows, in column order."""
    if kind not in BOARD_KINDS:
        raise ValueError(f"Expected a board kind in {BOARD_KINDS} but got '{kind}'")
    return [m for m in REGISTRY.values() if kind in m.boards]


def bench_scorers(kind: str) -> list[Scorer]:
    """What the bench runs on a run of this board kind: the scorers of the board's metrics, each once, in order."""
    return list(dict.fromkeys(m.scorer for m in board_metrics(kind) if m.scorer is not None))


__all__ = ["BOARDS", "BOARD_KINDS", "Metric", "REGISTRY", "Scorer", "Scoring", "bench_scorers", "board_metrics", "register"]

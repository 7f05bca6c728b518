"""CLIP score on the text board: what `sgbench eval clip` (sgbench.evaluation.t2i.evaluate_clip_run) writes. The
bench does not compute it: it needs open_clip weights, which sgbench does not ship."""

from __future__ import annotations

from sgbench.evaluation.metrics.base import Metric, any_scorer

METRICS = (
    Metric("clip_score", "CLIP", "higher", ".2f", "CLIP score, 100 x cosine", ("t2i",), any_scorer, tolerance="3%"),
)

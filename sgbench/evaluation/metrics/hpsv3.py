"""HPSv3 on the text board: what `sgbench eval hpsv3` (sgbench.evaluation.t2i.evaluate_hpsv3_run) writes, the
unweighted mean of the prompt categories' mean scores. The bench does not compute it: it needs the HPSv3
checkpoint and its base model, which sgbench does not ship."""

from __future__ import annotations

from sgbench.evaluation.metrics.base import Metric, any_scorer

METRICS = (
    Metric("hpsv3", "HPSv3", "higher", ".2f", "HPSv3 human preference (mean of category means)", ("t2i",), any_scorer,
           tolerance="3%"),
)

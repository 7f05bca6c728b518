"""The class board's metrics: what `sgbench eval fid` (sgbench.evaluation.evaluate) writes for a run in one
pass over its samples' features, against reference statistics. Each is read in the board's feature space
(extractor) against its reference. The bench computes all but KID (`eval fid --kid`)."""

from __future__ import annotations

from sgbench.evaluation.metrics.base import Metric, Scorer, Scoring, same_features
from sgbench.runs.rundir import RunDir


def _is_scored(run: RunDir, scoring: Scoring) -> bool:
    from sgbench.evaluation.reference import reference_name

    return run.has_metric("fid", scoring.extractor, reference_name(scoring.ref), scoring.num_samples)


def _score(run: RunDir, scoring: Scoring) -> None:
    from sgbench.evaluation.evaluate import evaluate

    evaluate(run.path, scoring.ref, scoring.extractor)


EVAL_FID = Scorer("eval fid", _is_scored, _score)
CLASS = ("class",)

METRICS = (
    Metric("fd", "FID", "lower", ".2f", "Frechet distance to the reference ('FD' in a non-Inception feature space)",
           CLASS, same_features, stored="fid", tolerance="5%", aliases=("fid",), scorer=EVAL_FID),
    Metric("sfid", "sFID", "lower", ".2f", "spatial FID (Inception only)", CLASS, same_features, tolerance="5%",
           scorer=EVAL_FID),
    Metric("is", "IS", "higher", ".2f", "Inception Score (of the extractor's logits)", CLASS, same_features,
           tolerance="5%", scorer=EVAL_FID),
    Metric("precision", "Prec.", "higher", ".3f", "precision, k = 3", CLASS, same_features, tolerance=0.03, scorer=EVAL_FID),
    Metric("recall", "Rec.", "higher", ".3f", "recall, k = 3", CLASS, same_features, tolerance=0.03, scorer=EVAL_FID),
    Metric("class_accuracy", "Class acc.", "higher", ".3f", "fraction classified as their requested label", CLASS,
           same_features, tolerance=0.02, aliases=("accuracy", "acc"), scorer=EVAL_FID),
    Metric("kid", "KID", "lower", ".5f", "kernel inception distance", CLASS, same_features),
)

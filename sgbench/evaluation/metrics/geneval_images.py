"""GenEval over images, on the text board: the fraction of all of a run's images the offline judge found
correct, the tasks pooled. GenEval's overall is the unweighted mean of its task scores, so a task of few
images weighs as much as one of many; this is the same judgement weighted by images instead.

Computed from what the run stores: the offline judge's verdict per image (RUN/geneval/results.jsonl,
written by `eval geneval` beside its `geneval` records), with a 95% bootstrap interval over the images
(docs/design.md, "Error bars"). The bench computes it after the offline GenEval. The real evaluator's
ingested results keep no per-image file in the run, so a row judged by it shows none (a row never mixes
judges: docs/design.md, "Metrics").
"""

from __future__ import annotations

from sgbench.evaluation.metrics.base import Metric, Scorer, Scoring
from sgbench.evaluation.metrics.geneval import OFFLINE, by_the_judge
from sgbench.runs.rundir import MetricRecord, RunDir, now
from sgbench.utils.errors import SgbenchError

NAME = "geneval_images"


def score_run(run: RunDir, *, replicates: int | None = None) -> MetricRecord:
    """The pooled fraction of the run's images judged correct by the offline GenEval, into its metrics.json
    (`replicates`: the bootstrap's, default bootstrap.DEFAULT_REPLICATES; 0: no interval). Refused unless
    the offline GenEval scored the samples on disk and results.jsonl holds its judgements."""
    import numpy as np

    from sgbench.evaluation import bootstrap
    from sgbench.evaluation.geneval.files import read_geneval_results
    from sgbench.evaluation.geneval.rules import summarize
    from sgbench.evaluation.geneval.run import RESULTS_FILE

    replicates = bootstrap.DEFAULT_REPLICATES if replicates is None else replicates
    judged = [r for r in run.metrics() if r.metric == "geneval" and r.extractor == OFFLINE]
    if not judged:
        raise SgbenchError(f"Expected the offline GenEval of the samples in {run.path} before its fraction of images "
                           f"judged correct, but metrics.json has none: sgbench eval geneval {run.path}")
    overall = judged[-1]
    results = [result for _, result in read_geneval_results(run.path / RESULTS_FILE)]
    if len(results) != overall.num_samples or abs(summarize(results).overall - overall.value) > 1e-12:
        raise SgbenchError(f"Expected {run.path / RESULTS_FILE} to hold the judgements of the run's GenEval "
                           f"({overall.num_samples} images, overall {overall.value:.4f}) but it holds {len(results)} that do "
                           f"not give it: re-evaluate with sgbench eval geneval {run.path}")
    correct = np.asarray([result["correct"] for result in results], bool)
    ci95 = bootstrap.mean_interval(correct, bootstrap.counts(len(correct), replicates)) if replicates else None
    record = MetricRecord(metric=NAME, value=float(correct.mean()), extractor=OFFLINE, reference=overall.reference,
                          num_samples=len(correct), samples_sha256=run.samples_sha256(), ci95=ci95,
                          weights_sha256=overall.weights_sha256, created=now())
    run.write_metrics([record])
    return record


def _is_scored(run: RunDir, scoring: Scoring) -> bool:
    from sgbench.text.prompts import prompt_set_name

    return run.has_metric(NAME, OFFLINE, prompt_set_name(scoring.prompts), scoring.num_samples)


def _score(run: RunDir, scoring: Scoring) -> None:
    score_run(run)


POOLED = Scorer("geneval images", _is_scored, _score)

METRICS = (
    Metric(NAME, "pooled", "higher", ".3f", "GenEval over images: the fraction of all images judged correct, tasks pooled",
           ("t2i",), by_the_judge, scorer=POOLED),
)

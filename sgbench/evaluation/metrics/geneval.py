"""The text board's GenEval metrics (docs/design.md, "GenEval"): the overall and one column per task, as
`sgbench eval geneval` (the offline judge, which the bench runs) or `sgbench ingest geneval` (the real
evaluator's results) write them (sgbench.evaluation.geneval.run). A run's row shows one judge's numbers:
the real evaluator's where ingested, else the offline judge's."""

from __future__ import annotations

from sgbench.evaluation.metrics.base import Metric, Scorer, Scoring
from sgbench.runs.rundir import MetricRecord, RunDir

REAL = "geneval"            # the real evaluator's results, ingested: the judge's name in metrics.json
OFFLINE = "geneval-animal"  # the offline judge of Animal scenes
JUDGES = (REAL, OFFLINE)    # the real evaluator's results win over the offline judge's


def judge_of(records: list[MetricRecord]) -> str | None:
    """The judge whose GenEval overall a run shows: the first of JUDGES that scored these records' samples."""
    return next((j for j in JUDGES if any(r.extractor == j and r.metric == "geneval" for r in records)), None)


def by_the_judge(records: list[MetricRecord], name: str, extractor: str, reference: str) -> MetricRecord | None:
    """The record of the judge that scored the run's GenEval overall, so that a row never mixes judges."""
    judge = judge_of(records)
    found = [r for r in records if r.metric == name and r.extractor == judge]
    return found[-1] if found else None


def _is_scored(run: RunDir, scoring: Scoring) -> bool:
    from sgbench.text.prompts import prompt_set_name

    return run.has_metric("geneval", OFFLINE, prompt_set_name(scoring.prompts), scoring.num_samples)


def _score(run: RunDir, scoring: Scoring) -> None:
    from sgbench.evaluation.geneval.run import evaluate_run

    evaluate_run(run.path)


OFFLINE_JUDGE = Scorer("eval geneval", _is_scored, _score)
T2I = ("t2i",)


def _task(task: str, header: str, what: str) -> Metric:
    return Metric(task, header, "higher", ".3f", f"GenEval {what}", T2I, by_the_judge, stored=f"geneval/{task}",
                  scorer=OFFLINE_JUDGE)


METRICS = (
    Metric("geneval", "GenEval", "higher", ".3f", "GenEval overall: the unweighted mean of its task scores", T2I,
           by_the_judge, tolerance=0.03, scorer=OFFLINE_JUDGE),
    _task("single_object", "single", "single object"),  # GenEval's six tasks, in its order (sgbench.data.geneval_words)
    _task("two_object", "two", "two objects"),
    _task("counting", "count", "counting"),
    _task("colors", "colors", "colours"),
    _task("position", "position", "position"),
    _task("color_attr", "attr.", "colour attribution"),
)

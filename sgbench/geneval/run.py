"""GenEval on run directories: score a text run (offline, on Animal scenes), export it for the real
GenEval, and bring the real GenEval's results back, all into the run's metrics.json.

A text run's samples carry `prompt_index` (sample i shows prompt i // K of its prompts file); the
prompts file must be GenEval metadata (tag, include, exclude) and must still be the file the run was
sampled from (its sha256 is in the run's identity).

Metric records: `geneval` (overall: the unweighted mean of the tasks present, GenEval's summary) and
`geneval/<task>`, each with a 95% bootstrap interval that resamples images within each task (a
stratified bootstrap: the overall's replicate is the mean of the tasks' replicates). `extractor` names
the judge: `geneval-animal` (this package's detector on Animal scenes) or `geneval` (the real
evaluator's results, ingested); `reference` names the prompt set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sgbench.errors import SgbenchError
from sgbench.files import cached_sha256
from sgbench.text.prompts import read_prompts, run_prompts
from sgbench.geneval.files import export_geneval_layout, ingest_geneval_results, write_results_jsonl
from sgbench.geneval.rules import GenevalReport, correct_by_task
from sgbench.metrics import bootstrap
from sgbench.rundir import MetricRecord, RunDir, now

OFFLINE = "geneval-animal"  # the offline judge's name in metrics.json
REAL = "geneval"            # the real evaluator's, ingested
RESULTS_FILE = "geneval/results.jsonl"


def check_geneval_metadata(records: list[dict], where: str) -> None:
    for n, r in enumerate(records, 1):
        if not isinstance(r.get("tag"), str) or not isinstance(r.get("include"), list):
            raise SgbenchError(f"Expected GenEval metadata (tag, include, exclude) for every prompt, but prompt {n} of "
                               f"{where} has none: GenEval needs runs sampled from an evaluation_metadata.jsonl")


def report_records(report: GenevalReport, run: RunDir, *, extractor: str, reference: str, weights_sha256: str | None,
                   replicates: int = bootstrap.DEFAULT_REPLICATES) -> list[MetricRecord]:
    """MetricRecords of a GenEval report: overall and per task, with stratified bootstrap intervals."""
    by_task = correct_by_task(report.results)
    task_replicates = {}
    if replicates:
        for k, (task, correct) in enumerate(by_task.items()):
            task_replicates[task] = np.asarray([c @ correct / len(correct) for c in bootstrap.counts(len(correct), replicates, seed=k)])
    num, sha, created = len(report.results), run.samples_sha256(), now()

    def record(metric: str, value: float, reps) -> MetricRecord:
        ci = bootstrap.percentile_interval(reps) if reps is not None else None
        return MetricRecord(metric=metric, value=float(value), extractor=extractor, reference=reference, num_samples=num,
                            samples_sha256=sha, ci95=ci, weights_sha256=weights_sha256, created=created)

    out = [record(f"geneval/{task}", report.task_scores[task], task_replicates.get(task)) for task in by_task]
    overall_reps = np.mean(list(task_replicates.values()), axis=0) if task_replicates else None
    return [record("geneval", report.overall, overall_reps), *out]


def evaluate_run(run_dir: str | Path, *, replicates: int = bootstrap.DEFAULT_REPLICATES) -> GenevalReport:
    """The offline GenEval on a text run of Animal scenes: RUN/geneval/results.jsonl and metrics.json."""
    from sgbench.geneval.detect import DEFAULT_WEIGHTS, load_object_classifier
    from sgbench.geneval.evaluate import evaluate_geneval
    from sgbench.metrics.npz import open_images

    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    check_geneval_metadata(records, reference)
    images = np.concatenate(list(open_images(run.samples).batches(1000)))
    if images.shape[-1] != 3:
        raise SgbenchError(f"Expected RGB samples for GenEval but {run.samples} has {images.shape[-1]} channel(s)")
    report = evaluate_geneval(images, [records[i] for i in index], classifier=load_object_classifier(),
                              filenames=[f"{i:05d}.png" for i in range(len(images))])
    write_results_jsonl(report.results, run.path / RESULTS_FILE)
    run.write_metrics(report_records(report, run, extractor=OFFLINE, reference=reference,
                                     weights_sha256=cached_sha256(DEFAULT_WEIGHTS), replicates=replicates))
    return report


def export_run(run_dir: str | Path, out: str | Path, *, metadata: str | Path | None = None) -> Path:
    """GenEval's folder layout of a text run (OUT/<prompt index>/metadata.jsonl, samples/<k>.png), for the
    real evaluator. With `metadata` (GenEval's evaluation_metadata.jsonl), the run must have been sampled
    from exactly those prompts."""
    from sgbench.metrics.npz import open_images
    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    check_geneval_metadata(records, reference)
    if metadata is not None:
        theirs = read_prompts(metadata)
        if theirs != records:
            raise SgbenchError(f"{run.path} was sampled from other prompts than {metadata} ({len(records)} vs {len(theirs)} "
                               "prompts, or different entries): sample it with --prompts set to that file")
    K = int(run.info().conditioning["images_per_prompt"])
    if len(index) != len(records) * K:
        raise SgbenchError(f"Expected every prompt's {K} images ({len(records) * K}) in {run.path} but it has {len(index)}: "
                           "GenEval's layout needs all of them (sample without -n)")
    images = np.concatenate(list(open_images(run.samples).batches(1000)))
    return export_geneval_layout(images, records, out)


def ingest_run(results_jsonl: str | Path, run_dir: str | Path, *, replicates: int = bootstrap.DEFAULT_REPLICATES) -> GenevalReport:
    """The real GenEval's results.jsonl (of this run's exported images) into the run's metrics.json."""
    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    report = ingest_geneval_results(results_jsonl)
    if len(report.results) != len(index):
        raise SgbenchError(f"Expected one result per image of {run.path} ({len(index)}) but {results_jsonl} has "
                           f"{len(report.results)}")
    run.write_metrics(report_records(report, run, extractor=REAL, reference=reference,
                                     weights_sha256=cached_sha256(results_jsonl), replicates=replicates))
    return report

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

import json
import re
from pathlib import Path

import numpy as np

from sgbench.data.scenes import DEFAULT_OBJECTS, check_style
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import cached_sha256
from sgbench.text.prompts import read_prompts, run_prompts
from sgbench.evaluation.geneval.files import check_layout_dir, export_geneval_layout, read_geneval_results, write_results_jsonl
from sgbench.evaluation.geneval.rules import GenevalReport, correct_by_task, summarize
from sgbench.evaluation import bootstrap
from sgbench.evaluation.metrics.geneval import OFFLINE, REAL  # the judges' names in metrics.json (re-exported)
from sgbench.runs.rundir import MetricRecord, RunDir, now

RESULTS_FILE = "geneval/results.jsonl"
# An image's path as GenEval's evaluator writes it in `filename`: ...<prompt index>/samples/<n>.png
IMAGE_PATH = re.compile(r"(?:^|[/\\])(\d+)[/\\]samples[/\\](\d+)\.png$")


def check_replicates(replicates: int) -> None:
    if replicates < 0:
        raise SgbenchError(f"Expected --bootstrap >= 0 (0: no intervals) but got {replicates}")


def check_geneval_metadata(records: list[dict], where: str) -> None:
    for n, r in enumerate(records, 1):
        if not isinstance(r.get("tag"), str) or not isinstance(r.get("include"), list):
            raise SgbenchError(f"Expected GenEval metadata (tag, include, exclude) for every prompt, but prompt {n} of "
                               f"{where} has none: GenEval needs runs sampled from an evaluation_metadata.jsonl")


def report_records(report: GenevalReport, run: RunDir, *, extractor: str, reference: str, weights_sha256: str | None,
                   replicates: int = bootstrap.DEFAULT_REPLICATES) -> list[MetricRecord]:
    """MetricRecords of a GenEval report: overall and per task, with stratified bootstrap intervals."""
    by_task = correct_by_task(report.results)
    task_replicates, overall_reps = bootstrap.stratified_replicates(by_task, replicates)
    num, sha, created = len(report.results), run.samples_sha256(), now()

    def record(metric: str, value: float, reps) -> MetricRecord:
        ci = bootstrap.percentile_interval(reps) if reps is not None else None
        return MetricRecord(metric=metric, value=float(value), extractor=extractor, reference=reference, num_samples=num,
                            samples_sha256=sha, ci95=ci, weights_sha256=weights_sha256, created=created)

    out = [record(f"geneval/{task}", report.task_scores[task], task_replicates.get(task)) for task in by_task]
    return [record("geneval", report.overall, overall_reps), *out]


def store_report(report: GenevalReport, run: RunDir, *, extractor: str, reference: str, weights_sha256: str | None,
                 replicates: int) -> None:
    """A judged run's metrics into metrics.json, and each image's verdict and task, in sample order, into
    RUN/evaluation/<judge>.npz for paired comparisons (both bound to the samples' sha256)."""
    from sgbench.evaluation.paired import write_per_sample

    write_per_sample(run.path, extractor, {"correct": np.asarray([bool(r["correct"]) for r in report.results]),
                                           "task": np.asarray([r["tag"] for r in report.results])},
                     weights_sha256=weights_sha256, samples_sha256=run.samples_sha256())
    run.write_metrics(report_records(report, run, extractor=extractor, reference=reference,
                                     weights_sha256=weights_sha256, replicates=replicates))


def evaluate_run(run_dir: str | Path, *, objects: str = DEFAULT_OBJECTS,
                 replicates: int = bootstrap.DEFAULT_REPLICATES) -> GenevalReport:
    """The offline GenEval on a text run of Animal scenes: RUN/geneval/results.jsonl and metrics.json.

    `objects` is how the model's training scenes drew objects (its recipe's data.objects): it picks the
    shipped classifier that judges (detect.CLASSIFIER_WEIGHTS), whose sha256 the records carry."""
    from sgbench.evaluation.geneval.detect import CLASSIFIER_WEIGHTS, load_object_classifier
    from sgbench.evaluation.geneval.evaluate import evaluate_geneval
    from sgbench.evaluation.npz import open_images

    check_replicates(replicates)
    check_style(objects)
    weights = CLASSIFIER_WEIGHTS[objects]
    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    check_geneval_metadata(records, reference)
    images = np.concatenate(list(open_images(run.samples).batches(1000)))
    if images.shape[-1] != 3:
        raise SgbenchError(f"Expected RGB samples for GenEval but {run.samples} has {images.shape[-1]} channel(s)")
    report = evaluate_geneval(images, [records[i] for i in index], classifier=load_object_classifier(weights),
                              filenames=[f"{i:05d}.png" for i in range(len(images))])
    write_results_jsonl(report.results, run.path / RESULTS_FILE)
    store_report(report, run, extractor=OFFLINE, reference=reference, weights_sha256=cached_sha256(weights),
                 replicates=replicates)
    return report


def export_run(run_dir: str | Path, out: str | Path, *, metadata: str | Path | None = None) -> Path:
    """GenEval's folder layout of a text run (OUT/<prompt index>/metadata.jsonl, samples/<k>.png), for the
    real evaluator. With `metadata` (GenEval's evaluation_metadata.jsonl), the run must have been sampled
    from exactly those prompts."""
    from sgbench.evaluation.npz import open_images
    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    check_geneval_metadata(records, reference)
    if metadata is not None:
        theirs = read_prompts(metadata)
        if theirs != records:
            raise SgbenchError(f"{run.path} was sampled from other prompts than {metadata} ({len(records)} vs {len(theirs)} "
                               "prompts, or different entries): sample it with --prompts set to that file")
    _images_per_prompt(run, records, index)
    check_layout_dir(Path(out))
    images = np.concatenate(list(open_images(run.samples).batches(1000)))
    return export_geneval_layout(images, records, out)


def _images_per_prompt(run: RunDir, records: list[dict], index: np.ndarray) -> int:
    """K, checked: GenEval's layout (and so its results) holds all K images of every prompt."""
    K = int(run.info().conditioning["images_per_prompt"])
    if len(index) != len(records) * K:
        raise SgbenchError(f"Expected every prompt's {K} images ({len(records) * K}) in {run.path} but it has {len(index)}: "
                           "GenEval's layout needs all of them (sample without -n)")
    return K


def match_results(lines: list[tuple[int, dict]], records: list[dict], K: int, run: RunDir, path: Path) -> list[dict]:
    """The results in image order, checked to be this run's images, each exactly once and each judged
    against the prompt it shows: GenEval's `filename` names OUT/<prompt index>/samples/<n>.png (what
    export_run writes) and `metadata` is that prompt's entry, as a JSON string (or an object)."""
    first_line: dict[tuple[int, int], int] = {}
    by_image: dict[tuple[int, int], dict] = {}
    for number, result in lines:
        filename = result.get("filename")
        match = IMAGE_PATH.search(filename) if isinstance(filename, str) else None
        if match is None:
            raise SgbenchError(f"Expected a 'filename' OUT/<prompt index>/samples/<n>.png (GenEval's layout) on line {number} "
                               f"of {path} but got {filename!r}")
        p, k = int(match[1]), int(match[2])
        where = f"line {number} of {path} ({filename})"
        if p >= len(records) or k >= K:
            raise SgbenchError(f"Expected results for images of {run.path} (prompt folders 00000 to {len(records) - 1:05d}, "
                               f"samples 0 to {K - 1}) but {where} names image {k} of prompt {p}, which it does not have")
        if (p, k) in by_image:
            raise SgbenchError(f"Expected each image of {run.path} once but {where} is image {k} of prompt {p} again "
                               f"(first on line {first_line[p, k]})")
        expected = records[p]
        if result.get("prompt") != expected["prompt"] or result["tag"] != expected["tag"]:
            raise SgbenchError(f"Expected {where} to be judged against prompt {p} of {run.path}, {expected['prompt']!r} "
                               f"({expected['tag']}), but it was against {result.get('prompt')!r} ({result['tag']})")
        metadata = result.get("metadata")
        try:
            metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        except json.JSONDecodeError:
            pass  # not JSON: reported below as different metadata
        if metadata != expected:
            raise SgbenchError(f"Expected the 'metadata' of {where} to be prompt {p} of {run.path}, {json.dumps(expected)}, "
                               f"but it is {str(result.get('metadata'))[:200]}")
        first_line[p, k], by_image[p, k] = number, result
    missing = [(p, k) for p in range(len(records)) for k in range(K) if (p, k) not in by_image]
    if missing:
        p, k = missing[0]
        raise SgbenchError(f"Expected a result for each of the {len(records) * K} images of {run.path} but {path} has none "
                           f"for {len(missing)} of them (first: image {k} of prompt {p}, {p:05d}/samples/{k:04d}.png)")
    # image order, not the evaluator's (it lists folders in os.listdir order): the same results give
    # the same task order and so the same bootstrap intervals
    return [by_image[key] for key in sorted(by_image)]


def ingest_run(results_jsonl: str | Path, run_dir: str | Path, *, replicates: int = bootstrap.DEFAULT_REPLICATES) -> GenevalReport:
    """The real GenEval's results.jsonl (of this run's exported images) into the run's metrics.json; refused
    unless it holds one result for every image of the run, each judged against that image's prompt."""
    check_replicates(replicates)
    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    check_geneval_metadata(records, reference)
    K = _images_per_prompt(run, records, index)
    report = summarize(match_results(read_geneval_results(results_jsonl), records, K, run, Path(results_jsonl)))
    store_report(report, run, extractor=REAL, reference=reference, weights_sha256=cached_sha256(results_jsonl),
                 replicates=replicates)
    return report

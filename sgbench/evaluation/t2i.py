"""Human-preference and alignment scores of text-to-image runs, into metrics.json: HPSv3 and CLIP score.

Each image is scored against its own prompt (the run's prompts file, sample i showing prompt
prompt_index[i]). Records carry 95% bootstrap intervals: CLIP's resamples images; HPSv3's overall is
the unweighted mean of its category means (HPSv3's benchmark), so its bootstrap resamples images
within each category. GenEval lives in sgbench.evaluation.geneval.run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sgbench.evaluation import bootstrap
from sgbench.runs.rundir import MetricRecord, RunDir, now
from sgbench.text.prompts import run_prompts


def evaluate_hpsv3_run(run_dir: str | Path, *, checkpoint: str | Path, base_model: str | Path, device: str = "cuda",
                       batch_size: int = 16, replicates: int = bootstrap.DEFAULT_REPLICATES):
    """HPSv3 of every image against its prompt; `hpsv3` and `hpsv3/<category>` (when prompts carry a
    `category`) into the run's metrics.json. Returns the HPSv3Scores."""
    from sgbench.evaluation.hpsv3_score import hpsv3_scores

    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    prompts = [records[i]["prompt"] for i in index]
    categories = [records[i]["category"] for i in index] if all("category" in r for r in records) else None
    scores = hpsv3_scores(run.samples, prompts, checkpoint=checkpoint, base_model=base_model, categories=categories,
                          device=device, batch_size=batch_size)
    groups = list(categories) if categories else ["all"] * len(prompts)
    mu = np.asarray(scores.mu, np.float64)
    by_group = {group: mu[np.asarray(groups) == group] for group in dict.fromkeys(groups)}
    per_group, overall = bootstrap.stratified_replicates(by_group, replicates)
    sha, created = run.samples_sha256(), now()

    def record(metric, value, reps, n) -> MetricRecord:
        return MetricRecord(metric=metric, value=float(value), extractor="hpsv3", reference=reference, num_samples=n,
                            samples_sha256=sha, ci95=bootstrap.percentile_interval(reps) if reps is not None else None,
                            weights_sha256=scores.weights_sha256, created=created)

    out = [record("hpsv3", scores.overall, overall, len(prompts))]
    if categories:
        out += [record(f"hpsv3/{c}", m, per_group.get(c), groups.count(c)) for c, m in scores.category_means.items()]
    run.write_metrics(out)
    return scores


def evaluate_clip_run(run_dir: str | Path, *, model_name: str = "ViT-B-32", weights: str | Path | None = None,
                      batch_size: int = 32, random_init: bool = False, replicates: int = bootstrap.DEFAULT_REPLICATES) -> dict:
    """CLIP score of every image against its prompt; `clip_score` into the run's metrics.json."""
    from sgbench.evaluation.clip_score import clip_score

    run = RunDir(run_dir)
    records, index, reference = run_prompts(run)
    out = clip_score(run.samples, [records[i]["prompt"] for i in index], model_name=model_name, weights=weights,
                     random_init=random_init, batch_size=batch_size)
    ci = bootstrap.mean_interval(out["per_image"], bootstrap.counts(len(out["per_image"]), replicates)) if replicates else None
    run.write_metrics([MetricRecord(metric="clip_score", value=out["clip_score"], extractor=f"clip-{model_name}",
                                    reference=reference, num_samples=out["num_samples"], samples_sha256=run.samples_sha256(),
                                    ci95=ci, weights_sha256=out["weights_sha256"], created=now())])
    return out

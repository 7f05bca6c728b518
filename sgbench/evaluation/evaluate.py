"""`evaluate`: samples (a run directory or an ADM npz) against reference statistics -> metrics.

features -> statistics -> metric, in one streaming pass over the samples:
  fid / sfid         Fréchet distance of features / spatial features to the reference's mu, sigma
  is, is_std         Inception Score of the extractor's logits over 10 contiguous splits
  precision, recall  k = 3 manifolds, samples against the reference's feature rows (ADM)
  kid, kid_std       optional, torch-fidelity's polynomial-kernel KID on the same rows
  class_accuracy     fraction of samples classified as their requested label (extractors whose logits
                     are the dataset's classes, when the samples carry labels)
Each metric from the samples gets a 95% bootstrap interval (sgbench.evaluation.bootstrap). A run directory
gets MetricRecords in metrics.json (sgbench.runs.rundir), each naming its extractor, the extractor's weights,
the reference and the sha256 of the samples it scored, and RUN/evaluation/<extractor>.npz: the per-sample
features and class-correctness that paired comparisons resample (sgbench.evaluation.paired).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation import bootstrap
from sgbench.evaluation.base import RANDOM_INIT_SHA
from sgbench.evaluation.fd import frechet_distance
from sgbench.evaluation.features import check_batch_size, stream_features
from sgbench.evaluation.isc import inception_score
from sgbench.evaluation.npz import open_images, read_labels
from sgbench.evaluation.paired import read_per_sample, write_per_sample
from sgbench.evaluation.prc import manifold_membership
from sgbench.runs.rundir import SAMPLES_FILE, MetricRecord, RunDir, now

DEFAULT_BATCH = {"animal": 500, "inception": 50}


def resolve_samples(samples: str | Path) -> tuple[Path, RunDir | None]:
    """(npz path, run directory or None)."""
    path = Path(samples)
    if path.is_dir():
        run = RunDir(path)
        if not run.samples.is_file():
            raise SgbenchError(f"Expected a run directory with {SAMPLES_FILE} but {path} has none (sampling unfinished?)")
        return run.samples, run
    if path.suffix == ".npz":
        return path, None
    raise SgbenchError(f"Expected a run directory or an .npz of samples but got '{samples}'"
                       + ("" if path.exists() else " (no such file or directory)"))


def kernel_inception_distance(ref: np.ndarray, samples: np.ndarray, subsets: int = 100, subset_size: int = 1000) -> tuple[float, float]:
    """torch-fidelity's KID (cubic polynomial kernel, unbiased MMD^2), mean and std over random subsets."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(ref), len(samples))
    out = kid_features_to_metric(
        torch.from_numpy(samples), torch.from_numpy(ref), kid_subsets=subsets, kid_subset_size=size, kid_degree=3,
        kid_gamma=None, kid_coef0=1, kid_kernel="poly", rng_seed=2020, verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def _check_labels(labels: np.ndarray | None, num_images: int, net, npz: Path) -> np.ndarray | None:
    if labels is None or not net.labels_are_classes:
        return None
    if len(labels) != num_images:
        raise SgbenchError(f"Expected one label per sample in {npz} but got {len(labels)} labels for {num_images} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= net.num_classes):
        raise SgbenchError(
            f"Expected labels in 0..{net.num_classes - 1} (the {net.extractor_name} extractor's classes) but {npz} has labels "
            f"from {labels.min()} to {labels.max()}: these samples are of another dataset; evaluate them with its extractor"
        )
    return labels


def _stored_records(run: RunDir, names: list[str], expected: dict) -> dict[str, MetricRecord] | None:
    """The records of `names` in metrics.json that scored the samples now on disk with every field of
    `expected` equal (extractor, its weights, reference, options, ...), or None when one is missing."""
    found = {r.metric: r for r in run.metrics()
             if r.metric in names and all(getattr(r, k) == v for k, v in expected.items())}
    return found if len(found) == len(names) else None


def evaluate(
    samples: str | Path,                # run directory (with samples.npz) or an ADM npz
    ref: str | Path,                    # reference name (`sgbench stats list`) or a reference npz
    extractor: str = "animal",          # 'animal' or 'inception'
    *,
    weights: str | Path | None = None,  # extractor weights file (default: shipped / SGBENCH_INCEPTION_WEIGHTS / hub cache)
    kid: bool = False,
    batch_size: int | None = None,      # does not change the results
    bootstrap_replicates: int = bootstrap.DEFAULT_REPLICATES,  # 0: no intervals
    write: bool = True,                 # write metrics.json when `samples` is a run directory
    reuse: bool = True,                 # a run directory's stored metrics of these samples, extractor, reference, options
    random_init: bool = False,          # tests only: an extractor without weights
) -> dict:
    """Evaluate samples; returns {'samples', 'num_samples', 'resolution', 'extractor', 'weights_sha256',
    'reference', 'num_reference', 'metrics': {name: value}, 'ci95': {name: [lo, hi]}, 'reused'} and, for
    a run directory, stores the metrics in its metrics.json.

    A run directory whose metrics.json already holds every metric this call would compute, scored on the
    samples now on disk (their sha256) with the same extractor weights, reference build, kid and bootstrap
    replicates, is not evaluated again: the stored numbers are returned (reused=True) and nothing is written."""
    from sgbench.evaluation.extractor import create_extractor  # here: importing the package loads no extractor
    from sgbench.evaluation.reference import load_reference

    if batch_size is not None:
        check_batch_size(batch_size)
    if bootstrap_replicates < 0:
        raise SgbenchError(f"Expected --bootstrap >= 0 (0: no intervals) but got {bootstrap_replicates}")
    npz, run = resolve_samples(samples)
    images = open_images(npz)
    net = create_extractor(extractor, weights=weights, random_init=random_init)
    reference = load_reference(ref)
    reference.check_compatible(net, images.resolution)
    labels = _check_labels(read_labels(npz), images.num_images, net, npz)
    head = {
        "samples": str(npz), "num_samples": images.num_images, "resolution": images.resolution, "extractor": extractor,
        "weights_sha256": net.weights_sha256, "reference": reference.entry.name, "num_reference": reference.entry.num_images,
    }
    # what fixes the numbers besides the samples, extractor and reference (batch_size does not change them)
    options = {"bootstrap_replicates": bootstrap_replicates, "reference_created": reference.entry.created}
    names = ["fid", *(["sfid"] if net.has_spatial and reference.mu_s is not None else []), "is", "is_std", "precision",
             "recall", *(["kid", "kid_std"] if kid else []), *(["class_accuracy"] if labels is not None else [])]
    if run is not None and reuse and net.weights_sha256 != RANDOM_INIT_SHA:  # random weights differ on every call
        stored = _stored_records(run, names, {"extractor": extractor, "reference": head["reference"], "num_samples": head["num_samples"],
                                              "weights_sha256": head["weights_sha256"], "num_reference": head["num_reference"],
                                              "resolution": head["resolution"], "options": options})
        per_sample = read_per_sample(run.path, extractor, weights_sha256=net.weights_sha256, samples_sha256=run.samples_sha256())
        if stored is not None and per_sample is not None:  # without the per-sample features, computed once more to store them
            return {**head, "metrics": {n: stored[n].value for n in names},
                    "ci95": {n: stored[n].ci95 for n in names if stored[n].ci95 is not None},
                    "bootstrap_replicates": bootstrap_replicates, "reused": True}
    result = stream_features(images, net, batch_size=batch_size or DEFAULT_BATCH.get(extractor, 100), keep_logits=True,
                             keep_spatial=bootstrap_replicates > 0, description=f"{extractor} features")
    mu, sigma = result.stats.mu_sigma()
    metrics = {"fid": frechet_distance(mu, sigma, reference.mu, reference.sigma)}
    if result.spatial is not None and reference.mu_s is not None:
        metrics["sfid"] = frechet_distance(*result.spatial.mu_sigma(), reference.mu_s, reference.sigma_s)
    metrics["is"], metrics["is_std"] = inception_score(result.logits)
    inside, recalled = manifold_membership(reference.features, result.features, k=3)
    metrics["precision"], metrics["recall"] = float(inside.double().mean()), float(recalled.double().mean())
    if kid:
        metrics["kid"], metrics["kid_std"] = kernel_inception_distance(reference.features, result.features)
    correct = None
    if labels is not None:
        correct = result.logits.argmax(1) == labels
        metrics["class_accuracy"] = float(correct.mean())

    ci95: dict[str, list[float] | None] = {}
    if bootstrap_replicates:
        draws = bootstrap.counts(images.num_images, bootstrap_replicates)
        ci95["fid"] = bootstrap.fd_interval(result.features, reference.mu, reference.sigma, draws)
        if "sfid" in metrics:
            ci95["sfid"] = bootstrap.fd_interval(result.spatial_features, reference.mu_s, reference.sigma_s, draws)
        ci95["is"] = bootstrap.statistic_interval(result.logits, lambda x: inception_score(x)[0], draws)
        ci95["precision"] = bootstrap.mean_interval(inside.numpy(), draws)
        ci95["recall"] = bootstrap.recall_interval(reference.features, result.features, draws)
        if correct is not None:
            ci95["class_accuracy"] = bootstrap.mean_interval(correct, draws)
    assert list(metrics) == names, (list(metrics), names)  # what a rerun looks up is what was computed
    out = {**head, "metrics": metrics, "ci95": ci95, "bootstrap_replicates": bootstrap_replicates, "reused": False}
    if run is not None and write:
        created = now()
        sha = run.samples_sha256()
        # what a paired comparison needs (docs/design.md, "Paired comparisons"), bound to these samples and weights
        arrays = {"features": np.asarray(result.features, np.float32), **({"correct": np.asarray(correct, bool)} if correct is not None else {})}
        write_per_sample(run.path, extractor, arrays, weights_sha256=net.weights_sha256, samples_sha256=sha)
        run.write_metrics([
            MetricRecord(metric=name, value=value, extractor=extractor, reference=out["reference"], num_samples=images.num_images,
                         samples_sha256=sha, ci95=ci95.get(name), weights_sha256=net.weights_sha256,
                         num_reference=out["num_reference"], resolution=images.resolution, created=created, options=options)
            for name, value in metrics.items()
        ])
    return out

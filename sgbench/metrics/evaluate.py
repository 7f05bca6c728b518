"""`evaluate`: samples (a run directory or an ADM npz) against reference statistics -> metrics.

features -> statistics -> metric, in one streaming pass over the samples:
  fid / sfid  Fréchet distance of features / spatial features to the reference's mu, sigma
  is, is_std  Inception Score of the extractor's logits over 10 contiguous splits
  precision, recall  k = 3 manifolds, samples against the reference's feature rows (ADM)
  kid, kid_std       optional, torch-fidelity's polynomial-kernel KID on the same rows
  class_accuracy     fraction of samples classified as their requested label (animal extractor, labels present)
Run directories get metrics.json: one record per metric with its extractor, weights sha256,
reference name and sample count; records of other extractors or references are kept.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import numpy as np
import torch

from sgbench.errors import SgbenchError
from sgbench.metrics.extractor import create_extractor
from sgbench.metrics.fd import frechet_distance
from sgbench.metrics.features import stream_features
from sgbench.metrics.npz import open_images, read_labels
from sgbench.metrics.prc import precision_recall
from sgbench.metrics.reference import load_reference

SAMPLES_FILE = "samples.npz"
METRICS_FILE = "metrics.json"
DEFAULT_BATCH = {"animal": 500, "inception": 50}


def resolve_samples(samples: str | Path) -> tuple[Path, Path | None]:
    """(npz path, run directory or None)."""
    path = Path(samples)
    if path.is_dir():
        if not (path / SAMPLES_FILE).is_file():
            raise SgbenchError(f"Expected a run directory with {SAMPLES_FILE} but {path} has none")
        return path / SAMPLES_FILE, path
    if path.suffix == ".npz":
        return path, None
    raise SgbenchError(f"Expected a run directory or an .npz of samples but got '{samples}'")


def kernel_inception_distance(ref: np.ndarray, samples: np.ndarray, subsets: int = 100, subset_size: int = 1000) -> tuple[float, float]:
    """torch-fidelity's KID (cubic polynomial kernel, unbiased MMD^2), mean and std over random subsets."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(ref), len(samples))
    out = kid_features_to_metric(
        torch.from_numpy(samples), torch.from_numpy(ref), kid_subsets=subsets, kid_subset_size=size, kid_degree=3,
        kid_gamma=None, kid_coef0=1, kid_kernel="poly", rng_seed=2020, verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def evaluate(
    samples: str | Path,                # run directory (with samples.npz) or an ADM npz
    ref: str | Path,                    # reference name in reference_stats/manifest.json, or a reference npz
    extractor: str = "animal",          # 'animal' or 'inception'
    *,
    weights: str | Path | None = None,  # extractor weights file (default: shipped / SGBENCH_INCEPTION_WEIGHTS / hub cache)
    kid: bool = False,
    batch_size: int | None = None,      # does not change the results
    write: bool = True,                 # write metrics.json when `samples` is a run directory
    random_init: bool = False,          # tests only: an extractor without weights
) -> dict:
    """Evaluate samples; returns {'samples', 'num_samples', 'resolution', 'extractor', 'weights_sha256',
    'reference', 'metrics': {name: value}} and, for a run directory, merges records into metrics.json."""
    npz, run_dir = resolve_samples(samples)
    images = open_images(npz)
    net = create_extractor(extractor, weights=weights, random_init=random_init)
    reference = load_reference(ref)
    reference.check_compatible(net, images.resolution)
    labels = read_labels(npz) if net.labels_are_classes else None
    if labels is not None and len(labels) != images.num_images:
        raise SgbenchError(f"Expected one label per sample in {npz} but got {len(labels)} labels for {images.num_images} images")
    result = stream_features(
        images, net, batch_size=batch_size or DEFAULT_BATCH[extractor], labels=labels, inception_score=True,
        description=f"{extractor} features",
    )
    mu, sigma = result.stats.mu_sigma()
    metrics = {"fid": frechet_distance(mu, sigma, reference.mu, reference.sigma)}
    if result.spatial is not None and reference.mu_s is not None:
        metrics["sfid"] = frechet_distance(*result.spatial.mu_sigma(), reference.mu_s, reference.sigma_s)
    metrics["is"], metrics["is_std"] = result.inception_score.result()
    metrics["precision"], metrics["recall"] = precision_recall(reference.features, result.features, k=3)
    if kid:
        metrics["kid"], metrics["kid_std"] = kernel_inception_distance(reference.features, result.features)
    if result.class_accuracy is not None:
        metrics["class_accuracy"] = result.class_accuracy.result()
    out = {
        "samples": str(npz), "num_samples": images.num_images,
        "resolution": images.resolution, "extractor": extractor, "weights_sha256": net.weights_sha256,
        "reference": reference.entry.name, "num_reference": reference.entry.num_images, "metrics": metrics,
    }
    if run_dir is not None and write:
        write_metrics(run_dir, out)
    return out


def write_metrics(run_dir: Path, result: dict) -> Path:
    """Merge this evaluation's records into run_dir/metrics.json (atomic write)."""
    path = Path(run_dir) / METRICS_FILE
    records = json.loads(path.read_text()).get("records", []) if path.is_file() else []
    new_keys = {(m, result["extractor"], result["reference"]) for m in result["metrics"]}
    records = [r for r in records if (r["metric"], r["extractor"], r["reference"]) not in new_keys]
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for metric, value in result["metrics"].items():
        records.append({
            "metric": metric, "value": value, "extractor": result["extractor"], "weights_sha256": result["weights_sha256"],
            "reference": result["reference"], "num_reference": result["num_reference"],
            "num_samples": result["num_samples"], "resolution": result["resolution"], "created": created,
        })
    tmp = path.with_name(METRICS_FILE + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "records": records}, indent=2) + "\n")
    os.replace(tmp, path)
    return path

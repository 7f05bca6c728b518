"""Evaluation: feature extractors registered with torch-fidelity, streaming statistics, reference
statistics, and the metrics (FID, sFID, IS, precision/recall, KID, class accuracy, LPIPS, CLIP score).

    from sgbench.metrics import evaluate
    evaluate("runs/my_run", ref="animal-all", extractor="animal")["metrics"]["fid"]
"""

from sgbench.metrics.evaluate import evaluate
from sgbench.metrics.extractor import EXTRACTOR_NAMES, create_extractor, register_with_torch_fidelity
from sgbench.metrics.fd import RunningStats, frechet_distance
from sgbench.metrics.npz import open_images, read_labels, write_samples
from sgbench.metrics.prc import precision_recall
from sgbench.metrics.reference import build_reference, import_adm, load_reference, read_manifest

register_with_torch_fidelity()

__all__ = [
    "EXTRACTOR_NAMES", "RunningStats", "build_reference", "create_extractor", "evaluate", "frechet_distance",
    "import_adm", "load_reference", "open_images", "precision_recall", "read_labels", "read_manifest",
    "register_with_torch_fidelity", "write_samples",
]

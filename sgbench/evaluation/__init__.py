"""Evaluation: feature extractors registered with torch-fidelity, streaming statistics, reference
statistics, and the metrics (FID, sFID, IS, precision/recall, KID, class accuracy, LPIPS, CLIP score).

    from sgbench.evaluation import evaluate
    evaluate("runs/my_run", ref="animal-all", extractor="animal")["metrics"]["fid"]
"""

from sgbench.evaluation.evaluate import evaluate
from sgbench.evaluation.extractor import EXTRACTOR_NAMES, create_extractor, register_with_torch_fidelity
from sgbench.evaluation.fd import RunningStats, frechet_distance
from sgbench.evaluation.npz import open_images, read_labels, write_samples
from sgbench.evaluation.prc import precision_recall
from sgbench.evaluation.reference import build_reference, import_adm, load_reference, read_manifest

register_with_torch_fidelity()

__all__ = [
    "EXTRACTOR_NAMES", "RunningStats", "build_reference", "create_extractor", "evaluate", "frechet_distance",
    "import_adm", "load_reference", "open_images", "precision_recall", "read_labels", "read_manifest",
    "register_with_torch_fidelity", "write_samples",
]

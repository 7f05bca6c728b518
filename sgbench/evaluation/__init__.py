"""Evaluation: feature extractors registered with torch-fidelity, streaming statistics, reference
statistics, the metrics (FID, sFID, IS, precision/recall, KID, class accuracy, LPIPS, CLIP score, GenEval,
HPSv3) and their registry (sgbench.evaluation.metrics).

    from sgbench.evaluation import evaluate
    evaluate("runs/my_run", ref="animal-all", extractor="animal")["metrics"]["fid"]

Importing the package loads no extractor: the metric registry is read by every leaderboard and by the
command line's help, which must not wait for torch-fidelity. So the names below load their module on
first use (PEP 562 `__getattr__`), and the extractors register with torch-fidelity when their module
loads (sgbench.evaluation.extractor). `evaluate` is bound at once: it names both the function and its
module, and the package's `evaluate` must stay the function.
"""

import importlib

from sgbench.evaluation.evaluate import evaluate

_LAZY = {  # name -> the module of this package that defines it
    "EXTRACTOR_NAMES": "extractor", "create_extractor": "extractor", "register_with_torch_fidelity": "extractor",
    "RunningStats": "fd", "frechet_distance": "fd",
    "open_images": "npz", "read_labels": "npz", "write_samples": "npz",
    "precision_recall": "prc",
    "build_reference": "reference", "import_adm": "reference", "load_reference": "reference", "read_manifest": "reference",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["evaluate", *_LAZY]

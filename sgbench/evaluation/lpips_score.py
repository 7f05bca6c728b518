"""Mean LPIPS between paired samples of two runs (the SG paper's Fig. 7 left: guided output vs the
conditional prediction from the same seed, sample i against sample i).

The lpips package ships only its linear heads; the AlexNet/VGG trunk is torchvision's ImageNet model,
which it would download. We build the trunk randomly initialised (`pnet_rand=True`) and load the
trunk weights from a local file: --trunk-weights, $SGBENCH_LPIPS_TRUNK, or the torch hub cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import sha256_file
from sgbench.evaluation.base import RANDOM_INIT_SHA, to_rgb_nchw
from sgbench.evaluation.npz import open_images
from sgbench.utils.progress import track

TRUNK_ENV = "SGBENCH_LPIPS_TRUNK"
TRUNK_FILES = {  # torchvision's ImageNet weights, as torch.hub names them
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
}


def resolve_trunk(net: str, weights: str | Path | None) -> Path:
    filename, url = TRUNK_FILES[net]
    for candidate, origin in ((weights, "--trunk-weights"), (os.environ.get(TRUNK_ENV), TRUNK_ENV)):
        if candidate:
            if not Path(candidate).is_file():
                raise SgbenchError(f"Expected LPIPS trunk weights at {candidate} (from {origin}) but there is no such file")
            return Path(candidate)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if hub.is_file():
        return hub
    raise SgbenchError(
        f"LPIPS trunk weights not found. Get {filename} from {url} (torchvision's ImageNet {net} weights) and put it "
        f"at {hub}, or pass --trunk-weights PATH, or set {TRUNK_ENV}=PATH"
    )


def build_lpips(net: str = "alex", *, trunk_weights: str | Path | None = None, random_trunk: bool = False):
    """(lpips.LPIPS with its shipped linear heads and a local trunk, trunk sha256). random_trunk: tests only."""
    import lpips

    if net not in TRUNK_FILES:
        raise SgbenchError(f"Expected an LPIPS trunk in {', '.join(TRUNK_FILES)} but got '{net}'")
    path = None if random_trunk else resolve_trunk(net, trunk_weights)
    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # torchvision keys features.{i}.* -> lpips keys slice{k}.{i}.* (each slice keeps the original indices)
        where = {name: s for s in range(1, model.net.N_slices + 1) for name, _ in getattr(model.net, f"slice{s}").named_children()}
        trunk = {f"slice{where[k.split('.')[1]]}.{k.split('.', 1)[1]}": v for k, v in state.items()
                 if k.startswith("features.") and k.split(".")[1] in where}
        expected = model.net.state_dict()
        if set(trunk) != set(expected) or any(trunk[k].shape != expected[k].shape for k in trunk):
            raise SgbenchError(f"Expected torchvision {net} weights ({TRUNK_FILES[net][0]}) in {path} but the tensors do not match")
        model.net.load_state_dict(trunk)
    return model.requires_grad_(False), RANDOM_INIT_SHA if path is None else sha256_file(path)


def _to_lpips_input(images: np.ndarray) -> torch.Tensor:
    return to_rgb_nchw(images).float() / 127.5 - 1.0  # LPIPS takes [-1, 1]


def mean_lpips(samples: str | Path, against: str | Path, *, net: str = "alex", trunk_weights=None,
               random_trunk: bool = False, batch_size: int = 64) -> dict:
    """Mean LPIPS over pairs (sample i of `samples`, sample i of `against`); npz paths. Returns value and provenance."""
    a, b = open_images(samples), open_images(against)
    if a.shape[:3] != b.shape[:3]:
        raise SgbenchError(f"Expected paired runs with the same number and size of samples but got {a.shape} and {b.shape}")
    model, sha = build_lpips(net, trunk_weights=trunk_weights, random_trunk=random_trunk)
    total = 0.0
    pairs = zip(a.batches(batch_size), b.batches(batch_size))
    with torch.inference_mode():
        for x, y in track(pairs, total=-(-a.num_images // batch_size), description="LPIPS"):
            total += float(model(_to_lpips_input(x), _to_lpips_input(y)).double().sum())
    return {"lpips": total / a.num_images, "num_pairs": a.num_images, "net": net, "weights_sha256": sha}


def evaluate_lpips(samples: str | Path, against: str | Path, *, net: str = "alex", trunk_weights=None,
                   random_trunk: bool = False, batch_size: int = 64) -> dict:
    """mean_lpips of two runs (or npz files); a run directory gets the value in its metrics.json."""
    from sgbench.evaluation.evaluate import resolve_samples
    from sgbench.runs.rundir import MetricRecord, now

    if batch_size < 1:
        raise SgbenchError(f"Expected --batch-size >= 1 but got {batch_size}")
    (a, run), (b, _) = resolve_samples(samples), resolve_samples(against)
    out = mean_lpips(a, b, net=net, trunk_weights=trunk_weights, random_trunk=random_trunk, batch_size=batch_size)
    if run is not None:
        run.write_metrics([MetricRecord(metric="lpips", value=out["lpips"], extractor=f"lpips-{net}", reference=str(against),
                                        num_samples=out["num_pairs"], samples_sha256=run.samples_sha256(),
                                        weights_sha256=out["weights_sha256"], num_reference=out["num_pairs"], created=now())])
    return out

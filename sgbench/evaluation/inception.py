"""The `inception` extractor: torch-fidelity's ADM-compatible InceptionV3 (`inception-v3-compat`).

Same network and weights as the ADM evaluator's TF graph (classify_image_graph_def.pb, 2015-12-05),
converted by torch-fidelity, including TF1's bilinear resize to 299 px. What ADM reads, we read:
- features: `pool_3` (2048-d)                                   -> FID, precision, recall, KID
- logits:   `softmax/logits/MatMul`, i.e. without the bias (1008) -> IS (torch-fidelity's 'logits_unbiased')
- spatial:  `mixed_6/conv`, first 7 channels, flattened in NHWC order (17 x 17 x 7 = 2023-d) -> sFID.
  torch-fidelity's TF-to-PyTorch name map puts TF `mixed_6/conv` at `Mixed_6d.branch1x1` (TF counts
  mixed, mixed_1..mixed_10 for Mixed_5b..Mixed_7c), and the TF op of that name is the block's ReLU output.

Weights are never downloaded here: `--weights`, then SGBENCH_INCEPTION_WEIGHTS, then the torch hub
cache where torch-fidelity itself would have put them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import sha256_file
from sgbench.evaluation.base import RANDOM_INIT_SHA

WEIGHTS_FILENAME = URL_INCEPTION_V3.rsplit("/", 1)[-1]  # weights-inception-2015-12-05-6726825d.pth
WEIGHTS_ENV = "SGBENCH_INCEPTION_WEIGHTS"
SPATIAL_CHANNELS = 7  # ADM: spatial[..., :7]


def hub_weights_path() -> Path:
    """Where torch-fidelity's `load_state_dict_from_url` caches the weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def resolve_inception_weights(weights: str | Path | None = None) -> Path:
    """`weights`, else $SGBENCH_INCEPTION_WEIGHTS, else the torch hub cache; a clear error when none exists."""
    for candidate, origin in ((weights, "--weights"), (os.environ.get(WEIGHTS_ENV), WEIGHTS_ENV)):
        if candidate:
            if not Path(candidate).is_file():
                raise SgbenchError(f"Expected InceptionV3 weights at {candidate} (from {origin}) but there is no such file")
            return Path(candidate)
    if hub_weights_path().is_file():
        return hub_weights_path()
    raise SgbenchError(
        f"InceptionV3 weights not found. Get {WEIGHTS_FILENAME} from {URL_INCEPTION_V3} "
        f"and put it at {hub_weights_path()}, or pass --weights PATH, or set {WEIGHTS_ENV}=PATH"
    )


def _random_init_file() -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(None, buffer)  # the parent loads this; our load_state_dict initialises randomly for None
    buffer.seek(0)
    return buffer


class InceptionExtractor(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 plus a hook capturing ADM's spatial features (registered as `sgbench-inception`)."""

    TORCH_FIDELITY_NAME = "sgbench-inception"
    extractor_name = "inception"
    has_spatial = True
    labels_are_classes = False  # 1008 TF classes, not the dataset's label indices
    num_classes = 1008

    def __init__(self, name, features_list, feature_extractor_weights_path=None, random_init=False, **kwargs):
        path = None if random_init else resolve_inception_weights(feature_extractor_weights_path)
        kwargs.pop("feature_extractor_internal_dtype", None)
        try:
            super().__init__(name, features_list, feature_extractor_weights_path=_random_init_file() if random_init else str(path))
        except (RuntimeError, KeyError) as e:
            raise SgbenchError(f"Expected torch-fidelity's InceptionV3 weights ({WEIGHTS_FILENAME}) in {path} but loading failed: {e}") from None
        self.weights_sha256 = RANDOM_INIT_SHA if random_init else sha256_file(path)
        self._spatial: torch.Tensor | None = None
        self.Mixed_6d.branch1x1.register_forward_hook(self._capture_spatial)

    def load_state_dict(self, state_dict, *args, **kwargs):
        if state_dict is None:  # random_init (tests): He-normal convs keep activations at unit scale through 90+ layers
            for m in self.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            return None
        return super().load_state_dict(state_dict, *args, **kwargs)

    def _capture_spatial(self, module, inputs, output: torch.Tensor) -> None:
        # (B, 192, 17, 17) -> first 7 channels -> NHWC -> (B, 2023), ADM's flattening order
        self._spatial = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(output.shape[0], -1).float()

    @classmethod
    def create(cls, *, weights=None, random_init=False) -> "InceptionExtractor":
        return cls(cls.TORCH_FIDELITY_NAME, ["2048", "logits_unbiased"], weights, random_init)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images uint8 (B, 3, H, W) -> features (B, 2048), logits (B, 1008), spatial (B, 2023)."""
        self._spatial = None
        out = self.convert_features_tuple_to_dict(self(images))
        return {"features": out["2048"], "logits": out["logits_unbiased"], "spatial": self._spatial}

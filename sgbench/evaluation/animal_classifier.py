"""The `animal` extractor: a small CNN classifier of Animal-MNIST (32x32x1, 10 classes).

Penultimate features (128-d, after global average pooling) give FD, precision and recall; logits give
IS and class accuracy (is sample i classified as the label it was generated for?). Trained by
`sgbench eval train-classifier` (sgbench.evaluation.train_classifier) on the `train` split; the shipped
weights (float16 safetensors, config and held-out accuracy in the file's metadata) are
sgbench/assets/animal_classifier.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from sgbench.data.animal import NUM_CLASSES
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import sha256_file
from sgbench.evaluation.base import RANDOM_INIT_SHA
from sgbench.models.checkpoint import read_record, read_weights

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "animal_classifier.safetensors"
FEATURE_DIM = 128


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AnimalNet(nn.Module):
    """conv16 conv32 pool conv64 pool conv128 avgpool -> 128 features -> linear -> 10 logits (~110k parameters)."""

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.body = nn.Sequential(
            _conv(1, 16), _conv(16, 32), nn.MaxPool2d(2),  # 32x32 -> 16x16
            _conv(32, 64), nn.MaxPool2d(2),                # -> 8x8
            _conv(64, feature_dim),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),         # (B, feature_dim)
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float (B, 1, 32, 32) in [-1, 1] -> (features (B, 128), logits (B, 10))."""
        features = self.body(x)
        return features, self.head(features)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1 or 3, H, W) -> float (B, 1, H, W) in [-1, 1]; RGB is averaged to gray (exact for replicated gray)."""
    x = images.float()
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    return x / 127.5 - 1.0


def load_animal_net(path: str | Path) -> AnimalNet:
    state = read_weights(path, what="animal classifier weights", rebuild="`sgbench eval train-classifier`")
    net = AnimalNet()
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise SgbenchError(f"Expected animal classifier weights in {path} but they do not fit AnimalNet: {e}") from None
    return net.eval()


def read_model_card(path: str | Path = DEFAULT_WEIGHTS) -> dict:
    """The training record stored in the weights' metadata (accuracy, command, epochs...)."""
    return read_record(path, "sgbench_classifier")


class AnimalExtractor(FeatureExtractorBase):
    """torch-fidelity extractor `sgbench-animal`, features 'features' (128-d) and 'logits' (10)."""

    TORCH_FIDELITY_NAME = "sgbench-animal"
    extractor_name = "animal"
    has_spatial = False
    labels_are_classes = True
    num_classes = NUM_CLASSES

    def __init__(self, name, features_list, feature_extractor_weights_path=None, random_init=False, **kwargs):
        super().__init__(name, features_list)
        path = Path(feature_extractor_weights_path or DEFAULT_WEIGHTS)
        self.net = AnimalNet().eval() if random_init else load_animal_net(path)
        self.weights_sha256 = RANDOM_INIT_SHA if random_init else sha256_file(path)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def create(cls, *, weights=None, random_init=False) -> "AnimalExtractor":
        return cls(cls.TORCH_FIDELITY_NAME, ["features", "logits"], weights, random_init)

    @staticmethod
    def get_provided_features_list():
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, logits = self.net(preprocess(x))
        out = {"features": features, "logits": logits}
        return tuple(out[k] for k in self.features_list)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features, logits = self.net(preprocess(images))
        return {"features": features, "logits": logits}

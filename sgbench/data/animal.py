"""Animal-MNIST: 10,000 real 28x28 grayscale animal silhouettes, 1,000 per class, 10 classes.

Vendored from the PyPI package animal-mnist 0.4 (MIT, see animal_mnist/LICENSE). The package's
two gzipped pickles (animal_data_version_3.gz, sha256 68a30346...; animal_label_version_3.gz,
sha256 dec8dba7...) were converted once, unchanged in content, to animal_mnist/animal_mnist.npz
(`images` uint8 (10000, 28, 28), `labels` uint8 (10000,)) so that nothing here unpickles and
nothing depends on tensorflow.

Images are padded to 32x32 (2 black pixels on each side) so that patch sizes 2, 4 and 8 tile them.
Split (fixed): within each class, images 0..899 are `train`, 900..999 are `test`; `all` is both.
Diffusion models train on `all` (FID references are built from `all`, the ADM convention of
comparing against the training distribution); the `animal` feature classifier trains on `train` and
reports accuracy on `test`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError

DATA_FILE = Path(__file__).parent / "animal_mnist" / "animal_mnist.npz"
CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 32
PER_CLASS = 1000
TRAIN_PER_CLASS = 900
SPLITS = ("all", "train", "test")


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DATA_FILE) as f:
        return f["images"], f["labels"].astype(np.int64)


def load_animal_mnist(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, 32, 32, 1) NHWC and labels int64 (N,), in the dataset's order."""
    if split not in SPLITS:
        raise SgbenchError(f"Unknown Animal-MNIST split '{split}'; expected one of {', '.join(SPLITS)}")
    images, labels = _raw()
    if split != "all":
        within = np.arange(len(labels)) % PER_CLASS  # the file is sorted by class, 1000 each
        pick = within < TRAIN_PER_CLASS if split == "train" else within >= TRAIN_PER_CLASS
        images, labels = images[pick], labels[pick]
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None]
    return padded, labels


def to_model_space(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images_uint8)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0

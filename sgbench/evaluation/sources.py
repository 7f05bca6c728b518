"""Image sources for statistics: an npz (`arr_0`), a folder of image files, or the embedded dataset.

Each has `num_images`, `resolution`, `description` and `batches(batch_size)` -> uint8 NHWC arrays, so
every consumer streams in batches whatever the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.npz import open_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class ArrayImages:
    images: np.ndarray  # uint8 (N, H, W, C)
    description: str

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return self.images.shape[1]

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self.images), batch_size):
            yield self.images[i : i + batch_size]


@dataclass(frozen=True)
class FolderImages:
    files: tuple[Path, ...]
    resolution: int
    description: str

    @property
    def num_images(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self.files), batch_size):
            yield np.stack([_read_image(f, self.resolution) for f in self.files[i : i + batch_size]])


def _read_image(path: Path, resolution: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        x = np.asarray(im.convert("L") if im.mode in ("L", "1", "I;16") else im.convert("RGB"))
    x = x[..., None] if x.ndim == 2 else x
    if x.shape[:2] != (resolution, resolution):
        raise SgbenchError(f"Expected every image in the folder to be {resolution}x{resolution} but {path} is {x.shape[1]}x{x.shape[0]}")
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)  # mixed gray/RGB folders: store as RGB, the extractors see 3 channels anyway
    return x


def open_source(spec: str | Path) -> ArrayImages | FolderImages:
    """`animal` / `animal:SPLIT` (embedded Animal-MNIST), a folder of images, or an npz with `arr_0`."""
    spec = str(spec)
    if spec == "animal" or spec.startswith("animal:"):
        from sgbench.data.animal import load_animal_mnist

        split = spec.split(":", 1)[1] if ":" in spec else "all"
        images, _ = load_animal_mnist(split)
        return ArrayImages(images, f"Animal-MNIST '{split}' split (sgbench/data/animal_mnist)")
    path = Path(spec)
    if path.is_dir():
        files = tuple(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            raise SgbenchError(f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in folder {path} but found none")
        from PIL import Image

        with Image.open(files[0]) as im:
            w, h = im.size
        if w != h:
            raise SgbenchError(f"Expected square images but {files[0]} is {w}x{h}")
        return FolderImages(files, w, f"folder {path} ({len(files)} images)")
    if path.suffix == ".npz":
        return open_images(path)
    raise SgbenchError(f"Expected 'animal', 'animal:SPLIT', a folder of images or an .npz file but got '{spec}'")

"""ADM sample files: `arr_0` uint8 NHWC in an .npz, read in batches without loading the whole array.

np.load(mmap_mode=...) does not apply to .npz members, so (like the ADM evaluator) we open the member
inside the zip and read the .npy header and then raw bytes batch by batch: 50,000 samples at 256 px
(9.8 GB) stream through in constant memory, stored or deflate-compressed alike.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_savez

SAMPLES_KEY = "arr_0"
LABELS_KEY = "labels"


@dataclass(frozen=True)
class NpzImages:
    """An `arr_0` member: its path, shape (N, H, W, C) and dtype, validated; read with `batches()`."""

    path: Path
    shape: tuple[int, int, int, int]
    key: str = SAMPLES_KEY

    @property
    def num_images(self) -> int:
        return self.shape[0]

    @property
    def resolution(self) -> int:
        return self.shape[1]

    @property
    def description(self) -> str:
        return f"npz {self.path.resolve()} ({self.key})"

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """uint8 (B, H, W, C) batches in file order."""
        with _open_member(self.path, self.key) as f:
            _read_header(f)
            per_image = int(np.prod(self.shape[1:]))
            for start in range(0, self.num_images, batch_size):
                n = min(batch_size, self.num_images - start)
                try:
                    data = f.read(n * per_image)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise SgbenchError(f"{self.path} is corrupt ({e}); sample it again or copy it again") from None
                if len(data) != n * per_image:
                    raise SgbenchError(f"{self.path}: '{self.key}' is truncated (expected {self.num_images} images)")
                yield np.frombuffer(data, dtype=np.uint8).reshape(n, *self.shape[1:])


def _describe(shape: tuple[int, ...], dtype: np.dtype) -> str:
    return f"{dtype} array of shape {tuple(shape)}"


@contextmanager
def _open_member(path: Path, key: str):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise SgbenchError(f"Expected an .npz file (a zip of .npy arrays) but {path} could not be opened: {e}") from None
    with zf:
        names = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
        if key not in names:
            raise SgbenchError(
                f"Expected key '{key}' (uint8 NHWC images, the ADM sample layout) in {path} but found keys {sorted(names)}"
            )
        with zf.open(f"{key}.npy") as f:
            yield f


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)  # (shape, fortran_order, dtype)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise SgbenchError(f"Expected an .npy member of format version 1.0 or 2.0 but got {version}")


def open_images(path: str | Path, key: str = SAMPLES_KEY) -> NpzImages:
    """Validate `key` of an npz as uint8 NHWC with 1 or 3 channels; refuse anything else with a message."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Expected an .npz file of samples but {path} does not exist")
    with _open_member(path, key) as f:
        shape, fortran, dtype = _read_header(f)
    found = _describe(shape, dtype)
    expected = "uint8 NHWC (N, H, W, C) with C = 1 or 3 and values in [0, 255]"
    if dtype != np.uint8:
        raise SgbenchError(f"Expected '{key}' in {path} as {expected} but got a {found}; convert images in [-1, 1] with round(x*127.5+127.5) clipped to 0..255")
    if len(shape) != 4:
        raise SgbenchError(f"Expected '{key}' in {path} as {expected} but got a {found}")
    if shape[-1] not in (1, 3):
        layout = " (looks like NCHW: channels first)" if shape[1] in (1, 3) else ""
        raise SgbenchError(f"Expected '{key}' in {path} as {expected} but got a {found}{layout}; transpose to NHWC")
    if shape[1] != shape[2]:
        raise SgbenchError(f"Expected square images in '{key}' of {path} but got a {found}")
    if fortran:
        raise SgbenchError(f"Expected '{key}' in {path} in C order but it is stored in Fortran order; save np.ascontiguousarray(x)")
    return NpzImages(path, tuple(int(s) for s in shape), key)


def read_labels(path: str | Path) -> np.ndarray | None:
    """The `labels` member as int64 (N,), or None when the file has none; refuses labels that are not
    integers (casting 2.7 to 2 would score samples against classes nobody asked for)."""
    try:
        with np.load(path) as f:
            labels = f[LABELS_KEY] if LABELS_KEY in f.files else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise SgbenchError(f"{path} is corrupt ({e}); sample it again or copy it again") from None
    if labels is None:
        return None
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise SgbenchError(f"Expected '{LABELS_KEY}' in {path} as integer class indices of shape (N,) (the ADM sample layout: "
                           f"arr_0 uint8 NHWC, labels int) but got a {_describe(labels.shape, labels.dtype)}")
    return labels.astype(np.int64)


def write_samples(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None) -> None:
    """Write an ADM-readable sample file: `arr_0` uint8 NHWC (+ `labels` int64)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise SgbenchError(f"Expected uint8 NHWC images with 1 or 3 channels but got a {_describe(images.shape, images.dtype)}")
    arrays = {SAMPLES_KEY: images}
    if labels is not None:
        arrays[LABELS_KEY] = np.asarray(labels, dtype=np.int64)
    atomic_savez(path, **arrays)

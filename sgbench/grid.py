"""Sample grids as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_grid(images: np.ndarray, path: str | Path, *, columns: int = 10, pad: int = 2, min_cell: int = 64) -> None:
    """uint8 NHWC images -> one PNG grid (small images are upscaled to about `min_cell` pixels)."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), dtype=np.uint8)
    grid[...] = 64  # grey separators
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = img
    pil = Image.fromarray(grid[..., 0] if c == 1 else grid)
    scale = max(1, min_cell // max(h, w))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pil.save(path)

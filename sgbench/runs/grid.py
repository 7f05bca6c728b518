"""Sample grids as PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from sgbench.utils.files import atomic_write_bytes


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
    _save_png(pil, path)


def save_labelled_grid(
    images: np.ndarray, labels: list[str], path: str | Path, *, pad: int = 2, min_cell: int = 64
) -> None:
    """uint8 NHWC images in len(labels) rows (one label per row, written at its left) -> one PNG."""
    from PIL import ImageDraw, ImageFont

    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = len(labels)
    assert n % rows == 0, "every row has the same number of images"
    columns = n // rows
    scale = max(1, min_cell // max(h, w))
    cell_h, cell_w = h * scale, w * scale
    try:
        font = ImageFont.load_default(size=max(11, cell_h // 5))
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max([probe.textlength(label, font=font) for label in labels] + [0])
    left = int(text_w) + 4 * pad
    canvas = Image.new("RGB", (left + columns * (cell_w + pad) + pad, rows * (cell_h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, label in enumerate(labels):
        y = pad + r * (cell_h + pad)
        draw.text((2 * pad, y + cell_h // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
        for col in range(columns):
            img = Image.fromarray(images[r * columns + col][..., 0] if c == 1 else images[r * columns + col])
            canvas.paste(img.convert("RGB").resize((cell_w, cell_h), Image.NEAREST), (left + col * (cell_w + pad), y))
    _save_png(canvas, path)


def _save_png(image: Image.Image, path: str | Path) -> None:
    """Written atomically (docs/design.md, "Files and packaging"): a killed process leaves the old grid or the new one."""
    png = io.BytesIO()
    image.save(png, format="PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png.getvalue())

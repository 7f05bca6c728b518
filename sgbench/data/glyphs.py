"""Glyphs: ten plain shapes drawn by the project, one per class name of Animal scenes (the `glyphs` style).

A glyph is an alpha mask (h, w) float32 in [0, 1] for a longest side of `size` px: the shape is drawn on
a 4x finer grid (pixel centres inside the shape's geometry) and area-averaged down, so edges are
antialiased as a resized silhouette's are. The shapes differ in what survives a blur at 10-20 px (filled
or hollow, round or cornered, bar or cross), so a small model can tell them apart; each class always
gets the same shape (the miniature's word for it), only its size varies.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SUPERSAMPLE = 4
# class index (sgbench.data.animal.CLASS_NAMES order) -> shape
SHAPES = ("disc", "square", "triangle", "ring", "plus", "cross", "diamond", "frame", "bar", "tee")


def _inside(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (x, y) in [-1, 1]^2 (y down) lie in the shape."""
    ax, ay, r = np.abs(x), np.abs(y), np.hypot(x, y)
    if shape == "disc":
        return r <= 1.0
    if shape == "square":
        return (ax <= 0.85) & (ay <= 0.85)
    if shape == "triangle":  # apex up, base at the bottom
        return (y <= 1.0) & (y >= -1.0) & (ax <= (y + 1.0) / 2.0)
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.5)
    if shape == "plus":
        return ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0))
    if shape == "cross":  # an X: two diagonal strokes
        return ((np.abs(x - y) <= 0.42) | (np.abs(x + y) <= 0.42)) & (ax <= 1.0) & (ay <= 1.0)
    if shape == "diamond":
        return ax + ay <= 1.0
    if shape == "frame":
        return (ax <= 0.9) & (ay <= 0.9) & ((ax >= 0.45) | (ay >= 0.45))
    if shape == "bar":  # a wide horizontal bar
        return (ax <= 1.0) & (ay <= 0.4)
    if shape == "tee":
        return ((ay <= 1.0) & (y <= -0.45) & (ax <= 1.0)) | ((ax <= 0.3) & (ay <= 1.0))
    raise ValueError(f"unknown glyph {shape!r}")


@lru_cache(maxsize=512)
def glyph(class_id: int, size: int) -> np.ndarray:
    """Alpha float32 (h, w) of the shape drawn in a `size` px square (a square or frame fills 85-90% of it, a
    bar is shorter than it is wide), trimmed to its nonzero box."""
    n = size * SUPERSAMPLE
    centres = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    x, y = np.meshgrid(centres, centres)
    fine = _inside(SHAPES[class_id], x, y).astype(np.float32)
    alpha = fine.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    rows, cols = np.nonzero(alpha >= 0.3)
    alpha = np.where(alpha >= 0.3, alpha, 0.0).astype(np.float32)
    return np.ascontiguousarray(alpha[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])

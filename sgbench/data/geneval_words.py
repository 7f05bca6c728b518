"""GenEval's vocabulary, shared by the scene renderer (sgbench.data.scenes: captions and layouts that
satisfy a prompt) and GenEval's judge (sgbench.evaluation.geneval: rules, prompts, detection): its colours,
relations, number words, tasks, article and plural rules (djghosh13/geneval prompts/create_prompts.py,
in its order) and its position rule (evaluation/evaluate_images.py). One owner, below both."""

from __future__ import annotations

import math

COLORS: dict[str, tuple[int, int, int]] = {  # GenEval's ten colours; each far from BACKGROUND and from each other
    "red": (220, 20, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 230, 20),
    "green": (20, 170, 40),
    "blue": (30, 70, 230),
    "purple": (140, 40, 200),
    "pink": (255, 130, 200),
    "brown": (120, 60, 10),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
}
BACKGROUND: tuple[int, int, int] = (128, 128, 128)
RELATIONS = ("left of", "right of", "above", "below")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
MIN_COUNT, MAX_COUNT = 2, 4  # GenEval's counting range; at most MAX_COUNT objects in any scene
MAX_OBJECTS = 4


def with_article(word: str) -> str:
    """GenEval's article rule: "an" before a vowel letter."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def plural(name: str) -> str:
    """GenEval's plural rule: "es" after a final s, else "s" (so "sheeps")."""
    return f"{name}es" if name.endswith("s") else f"{name}s"


POSITION_THRESHOLD = 0.1  # GenEval's box-size shrink (evaluation/evaluate_images.py)


def relation_components(box_a, box_b) -> tuple[float, float]:
    """GenEval's normalised offset (dx, dy) of box A from box B (evaluation/evaluate_images.py).

    offset = centre_a - centre_b; each axis shrunk towards 0 by 0.1 x (size_a + size_b) and clamped
    at 0 (sign kept); divided by |offset|. dx < -0.5: A left of B, dx > 0.5: right of; dy < -0.5:
    above, dy > 0.5: below (image rows grow downwards). (0, 0) when the shrunk offset vanishes.
    """
    ax1, ay1, ax2, ay2 = box_a[:4]
    bx1, by1, bx2, by2 = box_b[:4]
    ox, oy = (ax1 + ax2 - bx1 - bx2) / 2, (ay1 + ay2 - by1 - by2) / 2
    rx = math.copysign(max(abs(ox) - POSITION_THRESHOLD * ((ax2 - ax1) + (bx2 - bx1)), 0.0), ox)
    ry = math.copysign(max(abs(oy) - POSITION_THRESHOLD * ((ay2 - ay1) + (by2 - by1)), 0.0), oy)
    if abs(rx) < 1e-3 and abs(ry) < 1e-3:
        return 0.0, 0.0
    norm = math.hypot(ox, oy)
    return rx / norm, ry / norm

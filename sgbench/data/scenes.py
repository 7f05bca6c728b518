"""Animal scenes: the embedded text-to-image dataset, 1 to 4 coloured objects per image, named by a caption.

A scene is drawn, never stored: `training_scene(seed, index)` is a pure function of its arguments
(sample index -> scene, whatever the batch), `render_metadata(entry, seed)` draws a scene that
satisfies one GenEval prompt (its ground truth). Objects are tinted with one of GenEval's ten colours
on a uniform grey canvas (the object's alpha map is the alpha of the tint) and keep a gap of at least
GAP px between bounding boxes (so connected components of non-background pixels separate them); an
asked relation holds under GenEval's position rule with a margin (docs/design.md, "GenEval").

The miniature's style (DEFAULT_OBJECTS, DEFAULT_LAYOUT, DEFAULT_SPRITE, DEFAULT_CANVAS: the defaults
of every function, recipe and command that draws or judges scenes): glyphs on a 2x2 grid, 18 px on a
48 px canvas. Each object is its class's glyph (sgbench.data.glyphs: one plain shape per class, the
same in both splits) drawn at exactly `sprite` px, centred in one cell of the grid. Why: a small text
model learns one fixed drawing per class at a fixed place within its tokens (a 24 px cell is a whole
number of patches at patch 2, 4 or 8, so a class's object fills the same pixels of the same tokens in
every cell); 900 silhouettes per class (mirrored, sized +- sprite/8, at random sub-token offsets) were
not learnt in the CPU budget.

Options, drawn exactly as before for the same arguments: objects "silhouettes" (one Animal-MNIST
silhouette: the `train` split's 9,000 for training scenes, the `test` split's 1,000 for evaluation
renders, cropped to its bounding box, resized so its longest side is `size` px, randomly mirrored)
and layout "free" (objects anywhere GAP apart, sizes sprite +- sprite/8); the first text models were
trained on silhouettes, free, sprite 16 (the scene classifier's held-out accuracy on them is in
sgbench/assets/README.md). Sizes are parameters: the grid takes 10 <= sprite <= canvas/2 - GAP, the
free layout 10 <= sprite and sprite + sprite/8 <= canvas/2 - GAP (four objects fit the quadrants),
e.g. 40 and 14, 64 and 24.

Captions follow GenEval's phrasing (prompts/create_prompts.py of djghosh13/geneval): "a photo of a
bear", "a photo of a bear and a cat", "a photo of three cats", "a photo of a red bear", "a photo of
a bear left of a cat", "a photo of a red bear and a blue cat", with GenEval's articles ("an
elephant", "an orange cat"), number words and plurals (name + "s", or + "es" after an s: so "sheeps",
as GenEval writes it). Half the captions drop "a photo of", some say "one" for a single object, and a
seventh family mixes counts and colours ("two red cats and a bear"): the concepts stay learnable
when GenEval's exact strings are held out (`held_out`). Every object in a scene is named by its
caption; an object whose colour the caption does not name gets a random one; a count is exact.

Metadata follows GenEval's schema (prompts/evaluation_metadata.jsonl): {tag, include: [{class,
count, color?, position?: [relation, index of the include it refers to]}], exclude: [{class,
count}]?, prompt}; exclude {class, n + 1} for every group of n >= 2, as GenEval's counting prompts
have. `tag` is the GenEval task whose generator makes that structure, or "mixed".
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from sgbench.data.animal import CLASS_NAMES, load_animal_mnist
from sgbench.data.glyphs import glyph
from sgbench.data.placement import CROSS_LIMIT, EDGE, GAP, MERGE_RADIUS, RELATION_MARGIN, place, place_grid  # noqa: F401  (re-exported)
from sgbench.data.geneval_words import (  # noqa: F401  GenEval's words, importable from here as before
    BACKGROUND, COLORS, MAX_COUNT, MAX_OBJECTS, MIN_COUNT, NUMBER_WORDS, RELATIONS, TASKS, plural, relation_components, with_article,
)
from sgbench.utils.errors import SgbenchError

# ---------------------------------------------------------------------------------------------------
# Scenes

ALPHA_CUTOFF = 0.3  # silhouette intensities below this become background, so every drawn pixel stands out
MIN_SPRITE = 10  # px; smaller silhouettes lose their shape (and shrink under the detector's 6 px speck limit)
# How an object is drawn: an Animal-MNIST silhouette of its class (900 train / 100 test per class, mirrored at
# random), or the class's glyph (sgbench.data.glyphs: one plain shape per class, the same in both splits).
OBJECT_STYLES = ("silhouettes", "glyphs")
# Where objects go: anywhere apart by GAP ("free", sizes jittered by sprite/8), or one per cell of a 2x2 grid,
# centred, at exactly `sprite` px ("grid": an object's tokens are the same wherever it is drawn).
LAYOUTS = ("free", "grid")
# The miniature's style: the default of every function, recipe and command that draws or judges scenes
# (module docstring: why glyphs on the grid). An explicit (objects, layout, sprite, canvas) draws the same
# scenes whatever these say.
DEFAULT_OBJECTS = "glyphs"
DEFAULT_LAYOUT = "grid"
DEFAULT_SPRITE = 18  # px: an object's longest side (the free layout jitters it by sprite/8)
DEFAULT_CANVAS = 48  # px: tiles with patch 2, 4, 8 and 16 (144 tokens at patch 4)


def check_style(objects: str, layout: str = DEFAULT_LAYOUT) -> None:
    """Refuse objects outside OBJECT_STYLES or a layout outside LAYOUTS, naming the allowed values."""
    if objects not in OBJECT_STYLES:
        raise SgbenchError(f"Expected the scenes' objects to be one of {', '.join(OBJECT_STYLES)} but got {objects!r}")
    if layout not in LAYOUTS:
        raise SgbenchError(f"Expected the scenes' layout to be one of {', '.join(LAYOUTS)} but got {layout!r}")


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: its class, colour name and box (x1, y1, x2, y2) in pixels, x2/y2 exclusive."""

    class_name: str
    color: str
    box: tuple[int, int, int, int]


@dataclass
class Scene:
    """image uint8 (H, W, 3); caption; GenEval-schema metadata; the objects drawn (ground truth)."""

    image: np.ndarray
    caption: str
    metadata: dict
    objects: list[SceneObject]


def _check_sizes(canvas: int, sprite: int, layout: str) -> None:
    if layout == "grid":
        if not MIN_SPRITE <= sprite <= canvas // 2 - GAP:
            raise SgbenchError(f"Expected {MIN_SPRITE} <= sprite <= canvas/2 - {GAP} (one object per grid cell, {GAP} px apart) "
                               f"but got canvas {canvas}, sprite {sprite}")
        return
    if not MIN_SPRITE <= sprite <= canvas // 2 - GAP - jittered_size(sprite):
        raise SgbenchError(
            f"Expected {MIN_SPRITE} <= sprite <= canvas/2 - {GAP} - sprite/8 (four objects must fit the canvas "
            f"quadrants) but got canvas {canvas}, sprite {sprite}"
        )


def jittered_size(sprite: int) -> int:
    return max(1, round(sprite / 8))


@lru_cache(maxsize=2)
def _crops(split: str) -> tuple[list[np.ndarray], ...]:
    """Per class: the split's silhouettes (uint8) cropped to their bounding box at ALPHA_CUTOFF."""
    images, labels = load_animal_mnist(split)
    crops: tuple[list[np.ndarray], ...] = tuple([] for _ in CLASS_NAMES)
    for image, label in zip(images[..., 0], labels):
        rows, cols = np.nonzero(image >= ALPHA_CUTOFF * 255)
        crops[label].append(np.ascontiguousarray(image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]))
    return crops


_BACKGROUND = np.asarray(BACKGROUND, np.float32)
_TINTS = {name: np.asarray(rgb, np.float32) - _BACKGROUND for name, rgb in COLORS.items()}
_SPRITES: dict[tuple[str, int, int, int], np.ndarray] = {}  # <= 10,000 x (2 jitter + 1) small arrays per sprite


def tinted_sprite(split: str, class_id: int, which: int, longest: int) -> np.ndarray:
    """Alpha float32 (h, w) in [0, 1], longest side `longest` (minus trimmed faint rows), one object; cached.

    Resized with antialiasing, intensities below ALPHA_CUTOFF zeroed, pieces farther than GAP - 1 px
    from the main body dropped (connected_parts), trimmed to the nonzero box.
    """
    key = (split, class_id, which, longest)
    alpha = _SPRITES.get(key)
    if alpha is None:
        crop = _crops(split)[class_id][which]
        h, w = crop.shape
        scale = longest / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resized = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
        resized[resized < ALPHA_CUTOFF] = 0.0
        resized[~_main_part(resized > 0)] = 0.0
        rows, cols = np.nonzero(resized)
        alpha = np.ascontiguousarray(resized[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])
        _SPRITES[key] = alpha
    return alpha


def dilate(mask: np.ndarray) -> np.ndarray:
    """mask (H, W) bool dilated by MERGE_RADIUS px (a square neighbourhood)."""
    return ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=MERGE_RADIUS)


def connected_parts(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Objects of a foreground mask (H, W) bool: labels int (H, W) (0 outside the mask) and their number.

    Pixels belong to one object when they connect (8-neighbours) after dilation by MERGE_RADIUS.
    """
    labels, n = ndimage.label(dilate(mask), np.ones((3, 3), bool))
    return np.where(mask, labels, 0), n


def _main_part(mask: np.ndarray) -> np.ndarray:
    labels, n = connected_parts(mask)
    if n == 1:
        return mask
    return labels == np.argmax(np.bincount(labels.ravel(), minlength=n + 1)[1:]) + 1


def _draw(rng: random.Random, groups, positions, *, canvas: int, sprite: int, split: str, objects: str, layout: str):
    """Objects for groups [(class, count, colour or None)], positions[g] = (relation, target group) or None.

    Returns (image uint8 (canvas, canvas, 3), [SceneObject]) with objects in group order.
    """
    crops = _crops(split) if objects == "silhouettes" else None
    jitter = jittered_size(sprite)
    members, alphas, constraints = [], [], []
    start = []
    for g, (name, count, color) in enumerate(groups):
        start.append(len(members))
        class_id = CLASS_NAMES.index(name)
        for _ in range(count):
            size = sprite if layout == "grid" else sprite + rng.randint(-jitter, jitter)
            if crops is None:
                alpha = glyph(class_id, size)
            else:
                alpha = tinted_sprite(split, class_id, rng.randrange(len(crops[class_id])), size)
                if rng.random() < 0.5:
                    alpha = alpha[:, ::-1]
            members.append((name, color or rng.choice(tuple(COLORS))))
            alphas.append(alpha)
            if positions[g] is None:
                constraints.append([])
            else:
                relation, target = positions[g]
                constraints.append([(relation, start[target] + k) for k in range(groups[target][1])])
    boxes = (place_grid if layout == "grid" else place)(rng, [a.shape for a in alphas], constraints, canvas)
    image = np.empty((canvas, canvas, 3), np.uint8)
    image[...] = BACKGROUND
    for (name, color), alpha, (x1, y1, x2, y2) in zip(members, alphas, boxes):
        # boxes are disjoint and alpha is 0 around the silhouette, so the box is written whole
        image[y1:y2, x1:x2] = np.rint(alpha[:, :, None] * _TINTS[color] + _BACKGROUND)
    objects = [SceneObject(name, color, box) for (name, color), box in zip(members, boxes)]
    return image, objects


# ---------------------------------------------------------------------------------------------------
# Captions and metadata


def _phrase(name: str, count: int, color: str | None, *, one: bool = False) -> str:
    """"a bear", "an orange cat", "one bear", "three red cats" (GenEval's articles, numbers, plurals)."""
    if count == 1:
        noun = f"{color} {name}" if color else name
        return f"one {noun}" if one else with_article(noun)
    noun = f"{color} {plural(name)}" if color else plural(name)
    return f"{NUMBER_WORDS[count]} {noun}"


def _task(groups, relation) -> str:
    """The GenEval task whose generator makes this structure (create_prompts.py), else "mixed"."""
    counts = [c for _, c, _ in groups]
    colors = [col for _, _, col in groups]
    if relation is not None:
        return "position" if colors == [None, None] else "mixed"
    if len(groups) == 1:
        if counts[0] == 1:
            return "colors" if colors[0] else "single_object"
        return "counting" if colors[0] is None else "mixed"
    if counts == [1, 1] and colors == [None, None]:
        return "two_object"
    if counts == [1, 1] and None not in colors and colors[0] != colors[1]:
        return "color_attr"
    return "mixed"


def describe(groups, relation: str | None = None, *, prefix: bool = True, one: bool = False) -> tuple[str, dict]:
    """Caption and GenEval metadata for groups [(class, count, colour or None)] in caption order.

    With a relation, the caption reads "<group 0> <relation> <group 1>" and, as in GenEval, include
    lists group 1 first and group 0 with position [relation, 0]. prefix: "a photo of ..."; one: "one
    bear" instead of "a bear". With prefix and not one, GenEval's six templates come out exactly.
    """
    phrases = [_phrase(n, c, col, one=one) for n, c, col in groups]
    body = f" {relation} ".join(phrases) if relation else " and ".join(phrases)
    caption = f"a photo of {body}" if prefix else body
    clauses = []
    for name, count, color in groups:
        clause = {"class": name, "count": count}
        if color:
            clause["color"] = color
        clauses.append(clause)
    if relation:
        clauses = [clauses[1], {**clauses[0], "position": [relation, 0]}]
    metadata = {"tag": _task(groups, relation), "include": clauses}
    exclude = [{"class": name, "count": count + 1} for name, count, _ in groups if count >= 2]
    if exclude:
        metadata["exclude"] = exclude
    metadata["prompt"] = caption
    return caption, metadata


def _color(rng: random.Random, p: float) -> str | None:
    return rng.choice(tuple(COLORS)) if rng.random() < p else None


# Training captions' families: GenEval's six task structures and a mixed one, in this order.
CAPTION_FAMILIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr", "mixed")


def check_family_weights(weights: dict[str, float] | None) -> None:
    """Refuse weights for unknown families or weights that are negative or all zero, naming what is allowed."""
    if weights is None:
        return
    unknown = sorted(set(weights) - set(CAPTION_FAMILIES))
    if unknown:
        raise SgbenchError(f"Unknown caption families {unknown}; expected some of {', '.join(CAPTION_FAMILIES)}")
    if any(not isinstance(w, (int, float)) or w < 0 for w in weights.values()) or not any(
        weights.get(f, 1.0) > 0 for f in CAPTION_FAMILIES
    ):
        raise SgbenchError(f"Expected caption family weights >= 0, not all zero (an unnamed family weighs 1) but got {weights}")


def _draw_caption(rng: random.Random, family_weights: dict[str, float] | None = None):
    """Groups and relation of one training caption: GenEval's six structures and a mixed family, 1/7 each,
    or in proportion to `family_weights` (an unnamed family weighs 1)."""
    if family_weights is None:
        family = rng.randrange(7)  # the default stream, as every earlier model was trained on it
    else:
        family = rng.choices(range(7), [family_weights.get(f, 1.0) for f in CAPTION_FAMILIES])[0]
    a, b = rng.sample(CLASS_NAMES, 2)
    if family == 0:  # single_object
        return [(a, 1, None)], None
    if family == 1:  # two_object
        return [(a, 1, None), (b, 1, None)], None
    if family == 2:  # counting
        return [(a, rng.randint(MIN_COUNT, MAX_COUNT), None)], None
    if family == 3:  # colors
        return [(a, 1, rng.choice(tuple(COLORS)))], None
    if family == 4:  # position; colours named sometimes ("a green bear above a white dog")
        return [(a, 1, _color(rng, 0.3)), (b, 1, _color(rng, 0.3))], rng.choice(RELATIONS)
    if family == 5:  # color_attr
        ca, cb = rng.sample(tuple(COLORS), 2)
        return [(a, 1, ca), (b, 1, cb)], None
    # mixed: counts 1-4 with optional colours, one or two groups, at most MAX_OBJECTS objects
    count_a = rng.randint(1, MAX_COUNT)
    groups = [(a, count_a, _color(rng, 0.5))]
    if count_a < MAX_OBJECTS and rng.random() < 0.5:
        groups.append((b, rng.randint(1, MAX_OBJECTS - count_a), _color(rng, 0.5)))
    return groups, None


def training_scene(
    seed: int,
    index: int,
    *,
    canvas: int = DEFAULT_CANVAS,                    # image side, px
    sprite: int = DEFAULT_SPRITE,                    # longest side of an object, px (free layout: +- sprite/8)
    held_out: frozenset[str] = frozenset(),          # captions never produced (e.g. the GenEval prompts)
    objects: str = DEFAULT_OBJECTS,                  # OBJECT_STYLES
    layout: str = DEFAULT_LAYOUT,                    # LAYOUTS
    family_weights: dict[str, float] | None = None,  # CAPTION_FAMILIES -> weight (None: 1/7 each)
) -> Scene:
    """Training scene `index` of the stream `seed` (silhouettes: `train`); a pure function of its arguments.

    A caption in `held_out` is redrawn (caption and scene) from the same random stream, so the
    result is still deterministic. Half the captions carry "a photo of"; a quarter of the rest
    say "one" for single objects.
    """
    _check_sizes(canvas, sprite, layout)
    check_style(objects, layout)
    check_family_weights(family_weights)
    rng = random.Random(f"sgbench-scene:{seed}:{index}")
    for _ in range(1000):
        groups, relation = _draw_caption(rng, family_weights)
        prefix = rng.random() < 0.5
        one = not prefix and rng.random() < 0.25
        caption, metadata = describe(groups, relation, prefix=prefix, one=one)
        if caption not in held_out:
            break
    else:
        raise SgbenchError("Expected held_out to leave some captions, but 1000 draws in a row were all held out")
    if relation:  # draw in include order: the target first, then the object that holds the relation to it
        groups, positions = [groups[1], groups[0]], [None, (relation, 0)]
    else:
        positions = [None] * len(groups)
    image, drawn = _draw(rng, groups, positions, canvas=canvas, sprite=sprite, split="train", objects=objects, layout=layout)
    return Scene(image, caption, metadata, drawn)


def _groups_of(metadata: dict):
    """(groups, positions) from a GenEval metadata entry, refusing what one scene cannot satisfy."""
    include = metadata.get("include")
    if not include or "prompt" not in metadata:
        raise SgbenchError(f"Expected GenEval metadata with 'prompt' and a non-empty 'include' but got {metadata}")
    groups, positions = [], []
    for i, clause in enumerate(include):
        name, count, color = clause.get("class"), clause.get("count"), clause.get("color")
        if name not in CLASS_NAMES:
            raise SgbenchError(
                f"Expected a class in {', '.join(CLASS_NAMES)} but got {name!r} in {metadata['prompt']!r}"
            )
        if not isinstance(count, int) or count < 1:
            raise SgbenchError(f"Expected a count >= 1 but got {count!r} in {metadata['prompt']!r}")
        if color is not None and color not in COLORS:
            raise SgbenchError(f"Expected a colour in {', '.join(COLORS)} but got {color!r} in {metadata['prompt']!r}")
        position = clause.get("position")
        if position is not None:
            relation, target = position
            if relation not in RELATIONS or not (isinstance(target, int) and 0 <= target < i):
                raise SgbenchError(
                    f"Expected position [relation in {', '.join(RELATIONS)}, index of an earlier include] "
                    f"but got {position!r} in {metadata['prompt']!r}"
                )
            position = (relation, target)
        groups.append((name, count, color))
        positions.append(position)
    names = [g[0] for g in groups]
    if len(set(names)) != len(names) or sum(g[1] for g in groups) > MAX_OBJECTS:
        raise SgbenchError(
            f"Expected distinct classes and at most {MAX_OBJECTS} objects in 'include' but got {metadata['prompt']!r}"
        )
    drawn = {name: count for name, count, _ in groups}
    for clause in metadata.get("exclude", []):
        if drawn.get(clause["class"], 0) >= clause["count"]:
            raise SgbenchError(f"Expected 'exclude' to allow the included objects but got {metadata['prompt']!r}")
    return groups, positions


def render_metadata(
    metadata: dict,
    seed: int,
    *,
    canvas: int = DEFAULT_CANVAS,                    # image side, px
    sprite: int = DEFAULT_SPRITE,                    # longest side of an object, px (free layout: +- sprite/8)
    split: str = "test",                             # silhouettes: "test" (evaluation) or "train"
    objects: str = DEFAULT_OBJECTS,                  # OBJECT_STYLES
    layout: str = DEFAULT_LAYOUT,                    # LAYOUTS
) -> Scene:
    """A scene satisfying a GenEval metadata entry: exactly the included objects, nothing else.

    Colours the entry does not name are random; asked relations hold with a margin. Deterministic
    in (metadata, seed); different prompts with one seed are independent draws.
    """
    _check_sizes(canvas, sprite, layout)
    check_style(objects, layout)
    if split not in ("train", "test"):
        raise SgbenchError(f"Expected split 'train' or 'test' but got {split!r}")
    groups, positions = _groups_of(metadata)
    rng = random.Random(f"sgbench-render:{seed}:{json.dumps(metadata, sort_keys=True)}")
    image, drawn = _draw(rng, groups, positions, canvas=canvas, sprite=sprite, split=split, objects=objects, layout=layout)
    return Scene(image, metadata["prompt"], metadata, drawn)


def caption_vocabulary() -> list[str]:
    """Every word a caption or an embedded GenEval prompt can contain, sorted (lower case, split on spaces)."""
    words = {"a", "an", "photo", "of", "and"}
    words |= {w for relation in RELATIONS for w in relation.split()}
    words |= set(NUMBER_WORDS[1 : MAX_COUNT + 1])
    words |= set(CLASS_NAMES) | {plural(name) for name in CLASS_NAMES} | set(COLORS)
    return sorted(words)

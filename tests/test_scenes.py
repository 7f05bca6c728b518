"""Specifications of sgbench.data.scenes: determinism, separation, faithful captions and metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sgbench.data.animal import CLASS_NAMES
from sgbench.data.scenes import (
    BACKGROUND, CAPTION_FAMILIES, COLORS, DEFAULT_CANVAS, DEFAULT_LAYOUT, DEFAULT_OBJECTS, DEFAULT_SPRITE, GAP, RELATIONS,
    caption_vocabulary, connected_parts, describe, relation_components, render_metadata, training_scene,
)
from sgbench.utils.errors import SgbenchError

SILHOUETTES = dict(objects="silhouettes", layout="free", sprite=16)  # the first text models' scenes, asked for explicitly
STYLES = {"default": {}, "silhouettes": SILHOUETTES}


def _same(a, b) -> bool:
    return np.array_equal(a.image, b.image) and (a.caption, a.metadata, a.objects) == (b.caption, b.metadata, b.objects)


def _holds(relation: str, box_a, box_b) -> bool:
    dx, dy = relation_components(box_a, box_b)
    return {"left of": dx < -0.5, "right of": dx > 0.5, "above": dy < -0.5, "below": dy > 0.5}[relation]


def check_scene(scene, canvas=48) -> None:
    """Everything the caption and metadata say holds in the drawn objects, and the objects are separable."""
    image, objects, meta = scene.image, scene.objects, scene.metadata
    assert image.shape == (canvas, canvas, 3) and image.dtype == np.uint8
    assert meta["prompt"] == scene.caption
    # separable: one connected part of non-background pixels per object, exactly filling its box
    foreground = (image != np.asarray(BACKGROUND, np.uint8)).any(-1)
    labels, n = connected_parts(foreground)
    assert n == len(objects)
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        inside = labels[y1:y2, x1:x2]
        assert len(np.unique(inside[inside > 0])) == 1
        rows, cols = np.nonzero(labels == inside[inside > 0][0])
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == obj.box
    for i, a in enumerate(objects):
        for b in objects[:i]:
            ax1, ay1, ax2, ay2 = a.box
            bx1, by1, bx2, by2 = b.box
            assert ax1 >= bx2 + GAP or bx1 >= ax2 + GAP or ay1 >= by2 + GAP or by1 >= ay2 + GAP
    # exact counts and colours, every object named, relations hold for every pair
    include = meta["include"]
    assert sum(c["count"] for c in include) == len(objects)
    groups = []
    for clause in include:
        members = [o for o in objects if o.class_name == clause["class"]]
        assert len(members) == clause["count"]
        if "color" in clause:
            assert all(o.color == clause["color"] for o in members)
        if "position" in clause:
            relation, target = clause["position"]
            assert all(_holds(relation, o.box, t.box) for o in members for t in groups[target])
        groups.append(members)
    for clause in meta.get("exclude", []):
        assert sum(o.class_name == clause["class"] for o in objects) < clause["count"]
    # the caption names every object (class words), in GenEval's words
    words = scene.caption.split()
    assert set(words) <= set(caption_vocabulary())


def test_the_miniatures_default_style_is_glyphs_on_the_grid_at_18_px():
    assert (DEFAULT_OBJECTS, DEFAULT_LAYOUT, DEFAULT_SPRITE, DEFAULT_CANVAS) == ("glyphs", "grid", 18, 48)
    explicit = dict(objects="glyphs", layout="grid", sprite=18, canvas=48)
    for index in range(20):
        assert _same(training_scene(3, index), training_scene(3, index, **explicit))
    entry = describe([("cat", 2, "red")])[1]
    assert _same(render_metadata(entry, 1), render_metadata(entry, 1, **explicit))


@pytest.mark.parametrize("style", STYLES)
def test_training_scene_is_a_function_of_seed_and_index(style):
    for index in (0, 7, 123456):
        assert _same(training_scene(3, index, **STYLES[style]), training_scene(3, index, **STYLES[style]))
    # independent of what was drawn before (no shared state)
    later = training_scene(3, 7, **STYLES[style])
    for i in range(50):
        training_scene(9, i, **STYLES[style])
    assert _same(later, training_scene(3, 7, **STYLES[style]))


@pytest.mark.parametrize("style", STYLES)
def test_different_seeds_and_indices_differ(style):
    a = [training_scene(0, i, **STYLES[style]) for i in range(20)]
    b = [training_scene(1, i, **STYLES[style]) for i in range(20)]
    assert all(not np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert len({x.image.tobytes() for x in a}) == 20


def test_silhouette_scenes_in_the_free_layout_are_faithful_and_separable():
    tags = set()
    for i in range(600):
        scene = training_scene(11, i, **SILHOUETTES)
        check_scene(scene)
        tags.add(scene.metadata["tag"])
    assert tags == {"single_object", "two_object", "counting", "colors", "position", "color_attr", "mixed"}


def test_glyph_scenes_on_the_grid_are_faithful_and_draw_each_class_as_its_glyph():
    """The default scenes, glyph objects on the 2x2 grid: every caption holds (relations too), one object per
    cell, centred, at exactly the sprite size, and each object's pixels are its class's glyph tinted in its colour."""
    from sgbench.data.glyphs import glyph

    half, tags = DEFAULT_CANVAS // 2, set()
    for i in range(400):
        scene = training_scene(5, i)
        check_scene(scene)
        tags.add(scene.metadata["tag"])
        cells = set()
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            alpha = glyph(CLASS_NAMES.index(obj.class_name), DEFAULT_SPRITE)
            assert (y2 - y1, x2 - x1) == alpha.shape and max(alpha.shape) <= DEFAULT_SPRITE  # a square fills 85% of its size
            col, row = x1 // half, y1 // half
            assert (x1 + x2) // 2 in (col * half + half // 2 - 1, col * half + half // 2) and (row, col) not in cells
            cells.add((row, col))
            drawn = (scene.image[y1:y2, x1:x2] != np.asarray(BACKGROUND, np.uint8)).any(-1)
            assert np.array_equal(drawn, alpha > 0)
    assert tags == {"single_object", "two_object", "counting", "colors", "position", "color_attr", "mixed"}
    with pytest.raises(SgbenchError, match="Expected the scenes' layout to be one of free, grid but got 'rows'"):
        training_scene(5, 0, layout="rows")
    with pytest.raises(SgbenchError, match=r"Expected 10 <= sprite <= canvas/2 - 3 \(one object per grid cell"):
        training_scene(5, 0, sprite=22)


def test_the_ten_glyphs_are_distinct_at_every_size():
    from sgbench.data.glyphs import SHAPES, glyph

    assert len(SHAPES) == len(CLASS_NAMES) == len(set(SHAPES))
    for size in range(10, 25):
        masks = [glyph(k, size) > 0 for k in range(len(SHAPES))]
        assert all(0.8 * size <= max(m.shape) <= size for m in masks)
        for a in range(len(masks)):
            for b in range(a):
                same_shape = masks[a].shape == masks[b].shape
                assert not (same_shape and np.array_equal(masks[a], masks[b])), (SHAPES[a], SHAPES[b], size)


@pytest.mark.parametrize("canvas,sprite", [(40, 14), (64, 24), (48, 19)])
def test_other_canvas_and_sprite_sizes_in_the_free_layout(canvas, sprite):
    for i in range(150):
        scene = training_scene(2, i, canvas=canvas, sprite=sprite, objects="silhouettes", layout="free")
        check_scene(scene, canvas)
        longest = max(max(o.box[2] - o.box[0], o.box[3] - o.box[1]) for o in scene.objects)
        assert longest <= sprite + max(1, round(sprite / 8))


def test_sizes_that_cannot_hold_four_objects_are_refused():
    with pytest.raises(SgbenchError, match=r"Expected 10 <= sprite <= canvas/2 - 3 - sprite/8 \(four objects must fit"):
        training_scene(0, 0, canvas=32, sprite=16, layout="free")
    with pytest.raises(SgbenchError, match=r"Expected 10 <= sprite <= canvas/2 - 3 \(one object per grid cell"):
        training_scene(0, 0, canvas=32, sprite=16)
    with pytest.raises(SgbenchError, match="Expected 10 <= sprite"):
        render_metadata({"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "x"}, 0, sprite=4)


def test_geneval_templates_come_out_exactly():
    """describe() with the defaults writes create_prompts.py's six templates and its metadata layout."""
    cases = [
        ([("bear", 1, None)], None, "a photo of a bear"),
        ([("elephant", 1, None), ("cat", 1, None)], None, "a photo of an elephant and a cat"),
        ([("sheep", 3, None)], None, "a photo of three sheeps"),
        ([("cat", 1, "orange")], None, "a photo of an orange cat"),
        ([("dog", 1, None), ("horse", 1, None)], "right of", "a photo of a dog right of a horse"),
        ([("cow", 1, "purple"), ("zebra", 1, "black")], None, "a photo of a purple cow and a black zebra"),
    ]
    for groups, relation, prompt in cases:
        assert describe(groups, relation)[0] == prompt
    _, meta = describe([("dog", 1, None), ("horse", 1, None)], "right of")
    assert json.dumps(meta) == (
        '{"tag": "position", "include": [{"class": "horse", "count": 1}, '
        '{"class": "dog", "count": 1, "position": ["right of", 0]}], "prompt": "a photo of a dog right of a horse"}'
    )
    _, meta = describe([("sheep", 3, None)])
    assert json.dumps(meta) == (
        '{"tag": "counting", "include": [{"class": "sheep", "count": 3}], '
        '"exclude": [{"class": "sheep", "count": 4}], "prompt": "a photo of three sheeps"}'
    )
    assert [describe(g, r)[1]["tag"] for g, r, _ in cases] == [
        "single_object", "two_object", "counting", "colors", "position", "color_attr"
    ]


def test_held_out_captions_never_come_out():
    held_out = set()
    for a in CLASS_NAMES:
        held_out.add(describe([(a, 1, None)])[0])
        held_out |= {describe([(a, n, None)])[0] for n in (2, 3, 4)}
        held_out |= {describe([(a, 1, c)])[0] for c in COLORS}
        held_out |= {describe([(a, 1, None), (b, 1, None)])[0] for b in CLASS_NAMES if b != a}
        held_out |= {describe([(a, 1, None), (b, 1, None)], r)[0] for b in CLASS_NAMES if b != a for r in RELATIONS}
    held_out = frozenset(held_out)
    plain = [training_scene(5, i) for i in range(400)]
    assert sum(s.caption in held_out for s in plain) > 50  # the set matters for this stream...
    kept = [training_scene(5, i, held_out=held_out) for i in range(400)]
    assert not any(s.caption in held_out for s in kept)  # ...and never comes out
    for s in kept[:100]:
        check_scene(s)
    assert _same(kept[17], training_scene(5, 17, held_out=held_out))
    # a scene whose caption is not held out is the same scene with or without the set
    assert all(_same(p, k) for p, k in zip(plain, kept) if p.caption not in held_out)


def test_caption_family_weights_change_how_often_each_family_is_drawn():
    """data.caption_families: relation captions at weight 3 (the others 1) are 3/9 of scenes; no weights
    draw the seven families 1/7 each, the stream the earlier models were trained on."""
    def relations(weights):
        return sum(" left of " in s.caption or " right of " in s.caption or " above " in s.caption or " below " in s.caption
                   for s in (training_scene(6, i, family_weights=weights) for i in range(900)))

    assert abs(relations(None) / 900 - 1 / 7) < 0.04
    assert abs(relations({"position": 3}) / 900 - 3 / 9) < 0.05
    assert relations({"position": 0}) == 0
    assert _same(training_scene(6, 3), training_scene(6, 3, family_weights=None))


@pytest.mark.parametrize("weights, message", [
    ({"relations": 3}, r"Unknown caption families \['relations'\]; expected some of single_object, two_object, counting"),
    ({"position": -1}, "Expected caption family weights >= 0, not all zero"),
    ({f: 0 for f in CAPTION_FAMILIES}, "Expected caption family weights >= 0, not all zero"),
])
def test_bad_caption_family_weights_are_refused(weights, message):
    with pytest.raises(SgbenchError, match=message):
        training_scene(6, 0, family_weights=weights)


def test_every_vocabulary_word_occurs():
    vocabulary = caption_vocabulary()
    assert vocabulary == sorted(set(vocabulary)) and all(w == w.lower() and " " not in w for w in vocabulary)
    seen = set()
    for i in range(1500):
        seen |= set(training_scene(4, i).caption.split())
    assert seen == set(vocabulary)


@pytest.mark.parametrize("style", STYLES)
def test_render_metadata_satisfies_each_geneval_task(style):
    entries = [
        {"tag": "single_object", "include": [{"class": "bear", "count": 1}], "prompt": "a photo of a bear"},
        {"tag": "counting", "include": [{"class": "zebra", "count": 4}], "exclude": [{"class": "zebra", "count": 5}],
         "prompt": "a photo of four zebras"},
        {"tag": "color_attr", "include": [{"class": "cow", "count": 1, "color": "brown"},
                                          {"class": "bird", "count": 1, "color": "white"}],
         "prompt": "a photo of a brown cow and a white bird"},
    ]
    entries += [describe([("dog", 1, None), ("giraffe", 1, None)], r)[1] for r in RELATIONS]
    for entry in entries:
        for seed in range(40):
            scene = render_metadata(entry, seed, **STYLES[style])
            check_scene(scene)
            assert scene.metadata is entry
        assert _same(render_metadata(entry, 3, **STYLES[style]), render_metadata(entry, 3, **STYLES[style]))
        assert not np.array_equal(render_metadata(entry, 3, **STYLES[style]).image, render_metadata(entry, 4, **STYLES[style]).image)


def test_render_metadata_uses_the_requested_split_of_silhouettes():
    entry = describe([("cat", 1, "red")])[1]
    test_images = {render_metadata(entry, s, **SILHOUETTES).image.tobytes() for s in range(5)}
    train_images = {render_metadata(entry, s, split="train", **SILHOUETTES).image.tobytes() for s in range(5)}
    assert not test_images & train_images
    assert _same(render_metadata(entry, 2, split="train"), render_metadata(entry, 2))  # a class has one glyph
    with pytest.raises(SgbenchError, match="Expected split 'train' or 'test'"):
        render_metadata(entry, 0, split="all")


@pytest.mark.parametrize("entry,message", [
    ({"include": [{"class": "teddy bear", "count": 1}], "prompt": "p"}, "Expected a class in bear"),
    ({"include": [{"class": "cat", "count": 0}], "prompt": "p"}, "Expected a count >= 1"),
    ({"include": [{"class": "cat", "count": 1, "color": "grey"}], "prompt": "p"}, "Expected a colour in red"),
    ({"include": [{"class": "cat", "count": 1, "position": ["near", 0]}], "prompt": "p"}, "Expected position"),
    ({"include": [{"class": "cat", "count": 3}, {"class": "dog", "count": 2}], "prompt": "p"}, "at most 4 objects"),
    ({"include": [{"class": "cat", "count": 1}, {"class": "cat", "count": 1}], "prompt": "p"}, "distinct classes"),
    ({"include": [{"class": "cat", "count": 2}], "exclude": [{"class": "cat", "count": 2}], "prompt": "p"},
     "Expected 'exclude' to allow"),
    ({"include": [], "prompt": "p"}, "non-empty 'include'"),
])
def test_render_metadata_refuses_what_no_scene_satisfies(entry, message):
    with pytest.raises(SgbenchError, match=message):
        render_metadata(entry, 0)

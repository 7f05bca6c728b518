"""The offline GenEval's judge on glyph scenes (sgbench.data.glyphs), the miniature's default style: the glyph
classifier, glyph/grid ground truth, and the options that select a style (silhouettes when asked for)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.data.animal import CLASS_NAMES
from sgbench.data.geneval_words import COLORS, TASKS
from sgbench.data.glyphs import glyph
from sgbench.data.scenes import DEFAULT_SPRITE
from sgbench.evaluation.geneval.detect import (
    CLASSIFIER_WEIGHTS, DEFAULT_WEIGHTS, GLYPH_WEIGHTS, SILHOUETTE_WEIGHTS, ObjectClassifier, classify,
    load_object_classifier, read_training_record,
)
from sgbench.evaluation.geneval.evaluate import evaluate_geneval, render_ground_truth, validate_geneval, validation_table
from sgbench.evaluation.geneval.prompts import load_prompts
from sgbench.evaluation.geneval.train_classifier import GLYPH_SPRITE, RECIPES, composite_crop, render_glyph_crops
from test_cli import one_line_error, record

runner = CliRunner()
SCENES = dict(objects="glyphs", layout="grid", sprite=18, canvas=48)  # the miniature's default scenes, spelt out
SILHOUETTES = dict(objects="silhouettes", layout="free", sprite=16, canvas=48)  # the first text models' scenes


@pytest.fixture(scope="module")
def glyph_classifier() -> ObjectClassifier:
    return load_object_classifier()  # the default style's


def test_each_object_style_has_its_shipped_classifier_and_glyphs_are_the_default():
    assert CLASSIFIER_WEIGHTS == {"silhouettes": SILHOUETTE_WEIGHTS, "glyphs": GLYPH_WEIGHTS}
    assert DEFAULT_WEIGHTS == GLYPH_WEIGHTS and GLYPH_WEIGHTS.is_file() and SILHOUETTE_WEIGHTS.is_file()
    assert SILHOUETTE_WEIGHTS.name == "scene_object_classifier.safetensors"
    assert read_training_record()["objects"] == "glyphs"
    assert GLYPH_SPRITE == DEFAULT_SPRITE  # the glyph classifier trained on the default sprite half the time
    assert RECIPES["silhouettes"] == {"members": 2, "scenes": 16000, "epochs": 60}  # the shipped silhouette record's


def test_shipped_glyph_classifier_record(glyph_classifier):
    saved = read_training_record(GLYPH_WEIGHTS)
    assert saved["objects"] == "glyphs" and saved["dtype"] == "float16"
    assert saved["command"] == "sgbench geneval train-classifier --objects glyphs"
    assert saved["members"] == len(glyph_classifier.members) == RECIPES["glyphs"]["members"]
    assert float(glyph_classifier.temperature) == pytest.approx(saved["temperature"], rel=1e-3)
    assert saved["test"]["accuracy"] == saved["test"]["accuracy_above_0.9"] == 1.0  # clean: every glyph, size, colour
    assert saved["test_distorted"]["accuracy"] >= 0.99


def test_glyph_crops_through_the_detector_are_classified_right_at_sizes_14_to_22(glyph_classifier):
    colors = tuple(COLORS)
    crops, labels = [], []
    for label in range(len(CLASS_NAMES)):
        for size in range(14, 23):
            color = colors[(label + size) % len(colors)]
            crops.append(composite_crop(glyph(label, size), color=color, offset=(label, size), noise=0.0, rng=None))
            labels.append(label)
    probs = classify(glyph_classifier, np.stack(crops))
    assert (probs.argmax(1) == labels).all()
    assert probs.max(1).min() > 0.9  # GenEval's counting bar


def test_glyph_crop_sources_are_independent_draws_and_deterministic():
    fit, fit_labels = render_glyph_crops(0, 20, source="fit")
    again, again_labels = render_glyph_crops(0, 20, source="fit")
    assert np.array_equal(fit, again) and np.array_equal(fit_labels, again_labels)
    val, _ = render_glyph_crops(0, 20, source="val")
    test, _ = render_glyph_crops(0, 20, source="test")
    assert not np.array_equal(fit, val) and not np.array_equal(val, test) and not np.array_equal(fit, test)


def test_glyph_grid_ground_truth_scores_1_on_every_task(glyph_classifier):
    prompts = load_prompts()
    picks = [p for t in TASKS for p in [p for p in prompts if p["tag"] == t][:2]]
    images, metadata = render_ground_truth(picks, images_per_prompt=2, seed=0)  # the default style
    assert np.array_equal(images, render_ground_truth(picks, images_per_prompt=2, seed=0, **SCENES)[0])
    report = evaluate_geneval(images, metadata)  # the default classifier: the glyph one
    assert report.task_scores == {task: 1.0 for task in TASKS}
    shuffled = [metadata[i] for i in np.random.default_rng(0).permutation(len(metadata))]
    assert evaluate_geneval(images, shuffled, classifier=glyph_classifier).overall < 0.5


@pytest.mark.slow
def test_default_validation_scores_1_on_every_task_and_shuffled_prompts_low():
    """sgbench/data/geneval_animal/README.md: glyph/grid ground truth scores 1.000 on every task (seeds 0, 1, 2)."""
    reports = validate_geneval()
    print("\n" + validation_table(reports))
    assert reports["ground_truth"].task_scores == {task: 1.0 for task in TASKS}
    assert all(score <= 0.15 for score in reports["shuffled"].task_scores.values()), reports["shuffled"].task_scores


def test_geneval_validate_passes_the_scene_style_and_classifier(monkeypatch):
    calls = record(monkeypatch, "sgbench.evaluation.geneval.evaluate.validate_geneval", {})
    result = runner.invoke(app, ["geneval", "validate", "--objects", "glyphs", "--layout", "grid", "--sprite", "18",
                                 "--canvas", "48", "--classifier", str(GLYPH_WEIGHTS)])
    assert result.exit_code == 0, result.output
    (_, kwargs), = calls
    assert {k: kwargs[k] for k in SCENES} == SCENES and isinstance(kwargs["classifier"], ObjectClassifier)
    assert runner.invoke(app, ["geneval", "validate"]).exit_code == 0
    assert calls[1][1] == dict(seed=0, images_per_prompt=4, **SCENES, classifier=None)  # the miniature's default
    assert runner.invoke(app, ["geneval", "validate", "--objects", "silhouettes", "--layout", "free", "--sprite", "16"]).exit_code == 0
    assert calls[2][1] == dict(seed=0, images_per_prompt=4, **SILHOUETTES, classifier=None)


def test_geneval_train_classifier_writes_the_file_of_its_objects(monkeypatch):
    calls = record(monkeypatch, "sgbench.evaluation.geneval.train_classifier.train_scene_classifier", {})
    assert runner.invoke(app, ["geneval", "train-classifier"]).exit_code == 0
    assert runner.invoke(app, ["geneval", "train-classifier", "--objects", "silhouettes"]).exit_code == 0
    assert [(args, kwargs["objects"]) for args, kwargs in calls] == [((GLYPH_WEIGHTS,), "glyphs"),
                                                                     ((SILHOUETTE_WEIGHTS,), "silhouettes")]


def test_a_bad_objects_or_layout_is_one_line_naming_the_allowed_values():
    allowed = "Expected the scenes' objects to be one of silhouettes, glyphs but got 'blobs'"
    one_line_error(runner.invoke(app, ["geneval", "train-classifier", "--objects", "blobs"]), allowed)
    one_line_error(runner.invoke(app, ["geneval", "validate", "--objects", "blobs"]), allowed)
    one_line_error(runner.invoke(app, ["geneval", "validate", "--objects", "glyphs", "--layout", "rows"]),
                   "Expected the scenes' layout to be one of free, grid but got 'rows'")

"""The offline GenEval: detections on Animal scenes judged by GenEval's rules, and its validation.

evaluate_geneval(images, metadata) is GenEval's evaluate_images.py + summary_scores.py with the
scene detector (sgbench.evaluation.geneval.detect) in place of Mask2Former and CLIP. validate_geneval() checks
the evaluator itself: ground-truth scenes drawn for every embedded prompt (render_metadata, in the
miniature's default style, glyphs on the grid, or silhouettes, each judged by its style's classifier) must
score near 1 on every task, and the same images judged against shuffled prompts must score far lower.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sgbench.data.scenes import (
    DEFAULT_CANVAS, DEFAULT_LAYOUT, DEFAULT_OBJECTS, DEFAULT_SPRITE, TASKS, check_style, render_metadata,
)
from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.geneval.detect import (
    CLASSIFIER_WEIGHTS, Detection, ObjectClassifier, detect, load_object_classifier,
)
from sgbench.evaluation.geneval.prompts import load_prompts
from sgbench.evaluation.geneval.rules import GenevalReport, image_result, summarize
from sgbench.core.seeding import derive_seed


def evaluate_geneval(
    images: np.ndarray,                          # uint8 (N, H, W, 3)
    metadata: Sequence[dict],                    # N GenEval metadata entries, image i's prompt
    *,
    classifier: ObjectClassifier | None = None,  # None: the default style's shipped one (detect.DEFAULT_WEIGHTS)
    filenames: Sequence[str] | None = None,      # results' `filename`; None: the image index
) -> GenevalReport:
    """Judge each image against its prompt: (results.jsonl lines, per-task scores, overall)."""
    if len(images) != len(metadata):
        raise SgbenchError(
            f"Expected one metadata entry per image but got {len(images)} images, {len(metadata)} entries"
        )
    if filenames is not None and len(filenames) != len(images):
        raise SgbenchError(f"Expected one filename per image but got {len(filenames)} for {len(images)} images")
    return judge_detections(detect(images, classifier or load_object_classifier()), metadata, filenames)


def judge_detections(
    detections: Sequence[Sequence[Detection]], metadata: Sequence[dict], filenames: Sequence[str] | None = None
) -> GenevalReport:
    """GenEval's rules over each image's detections and prompt (one prompt per image)."""
    names = filenames if filenames is not None else [str(i) for i in range(len(detections))]
    return summarize([image_result(d, m, f) for d, m, f in zip(detections, metadata, names)])


def render_ground_truth(
    prompts: Sequence[dict],
    *,
    images_per_prompt: int = 4,
    seed: int = 0,
    canvas: int = DEFAULT_CANVAS,
    sprite: int = DEFAULT_SPRITE,
    split: str = "test",                         # silhouettes' split (glyphs are the same in both)
    objects: str = DEFAULT_OBJECTS,              # sgbench.data.scenes.OBJECT_STYLES
    layout: str = DEFAULT_LAYOUT,                # sgbench.data.scenes.LAYOUTS
) -> tuple[np.ndarray, list[dict]]:
    """Ground-truth scenes, prompt-major: images uint8 (P * K, H, W, 3) and their metadata (P * K entries)."""
    images, metadata = [], []
    for entry in prompts:
        for k in range(images_per_prompt):
            scene = render_metadata(entry, derive_seed(seed, k), canvas=canvas, sprite=sprite, split=split,
                                    objects=objects, layout=layout)
            images.append(scene.image)
            metadata.append(entry)
    return np.stack(images), metadata


def validate_geneval(
    *,
    images_per_prompt: int = 4,
    seed: int = 0,                               # ground-truth draws and the shuffle
    canvas: int = DEFAULT_CANVAS,
    sprite: int = DEFAULT_SPRITE,
    split: str = "test",                         # silhouettes of the ground truth ("train": what a model
    #                                              that reproduced its training silhouettes would draw)
    classifier: ObjectClassifier | None = None,  # None: the shipped one for `objects` (detect.CLASSIFIER_WEIGHTS)
    objects: str = DEFAULT_OBJECTS,              # sgbench.data.scenes.OBJECT_STYLES
    layout: str = DEFAULT_LAYOUT,                # sgbench.data.scenes.LAYOUTS
) -> dict[str, GenevalReport]:
    """Score ground-truth scenes of every embedded prompt, then the same images against shuffled prompts.

    Returns {"ground_truth": report, "shuffled": report}; a sound evaluator gives ground truth near 1
    on every task and shuffled prompts far less.
    """
    if images_per_prompt < 1:
        raise SgbenchError(f"Expected --images-per-prompt >= 1 but got {images_per_prompt}")
    if seed < 0:
        raise SgbenchError(f"Expected --seed >= 0 but got {seed}")
    check_style(objects, layout)
    classifier = classifier or load_object_classifier(CLASSIFIER_WEIGHTS[objects])
    images, metadata = render_ground_truth(
        load_prompts(), images_per_prompt=images_per_prompt, seed=seed, canvas=canvas, sprite=sprite, split=split,
        objects=objects, layout=layout,
    )
    shuffled = [metadata[i] for i in np.random.default_rng(seed).permutation(len(metadata))]
    detections = detect(images, classifier)  # once: both judgements see the same images
    return {"ground_truth": judge_detections(detections, metadata), "shuffled": judge_detections(detections, shuffled)}


def validation_table(reports: dict[str, GenevalReport]) -> str:
    """A markdown table: one row per report, one column per task and overall."""
    lines = ["| images judged against | " + " | ".join(TASKS) + " | overall |",
             "|:--|" + "--:|" * (len(TASKS) + 1)]
    for name, report in reports.items():
        cells = [f"{report.task_scores[t]:.3f}" if t in report.task_scores else "-" for t in TASKS]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + f" | {report.overall:.3f} |")
    return "\n".join(lines)

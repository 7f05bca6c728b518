"""GenEval's rules (djghosh13/geneval evaluation/evaluate_images.py and summary_scores.py), over detections.

Per image: detections of each class sorted by score, kept above THRESHOLD (COUNTING_THRESHOLD for
counting prompts), at most MAX_OBJECTS per class (GenEval's default overlap limit of 1.0 keeps every
box). Then its `evaluate`: include clauses AND, exclude clauses OR; an include needs `count` objects
of its class, and the colour and position checks look at those `count` most confident ones only;
an exclude fails once `count` objects of its class are kept. The reasons are GenEval's strings, with
one change: a relation list is joined in RELATIONS order, where GenEval joins a Python set (whose
order varies between runs).
Per run: a task's score is the mean of `correct` over its images; overall is the unweighted mean of
the tasks present, in order of first appearance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from sgbench.data.geneval_words import COLORS, RELATIONS, relation_components
from sgbench.evaluation.geneval.detect import Detection

THRESHOLD = 0.3
COUNTING_THRESHOLD = 0.9
MAX_OBJECTS = 16


def relative_position(box_a, box_b) -> set[str]:
    """Relations A holds to B: GenEval's relative_position (box offset shrunk by 0.1 x sizes, |d| > 0.5)."""
    dx, dy = relation_components(box_a, box_b)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def keep_detections(detections: Sequence[Detection], tag: str) -> dict[str, list[Detection]]:
    """Per class, most confident first: score > threshold (0.9 for counting, else 0.3), at most 16."""
    threshold = COUNTING_THRESHOLD if tag == "counting" else THRESHOLD
    kept: dict[str, list[Detection]] = {}
    for det in sorted(detections, key=lambda d: -d.score):  # stable: equal scores keep detection order
        if det.score > threshold and len(kept.setdefault(det.class_name, [])) < MAX_OBJECTS:
            kept[det.class_name].append(det)
    return {name: found for name, found in kept.items() if found}


def judge(objects: dict[str, list[Detection]], metadata: dict) -> tuple[bool, str]:
    """GenEval's evaluate(): (correct, reasons joined by newlines) for kept detections and one prompt."""
    correct = True
    reasons = []
    matched_groups: list[list[Detection] | None] = []
    for clause in metadata.get("include", []):
        name, count = clause["class"], clause["count"]
        matched = True
        found = objects.get(name, [])[:count]
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        else:
            if "color" in clause:
                colors = [d.color for d in found]
                if colors.count(clause["color"]) < count:
                    correct = matched = False
                    reasons.append(
                        f"expected {clause['color']} {name}>={count}, found "
                        + f"{colors.count(clause['color'])} {clause['color']}; and "
                        + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                    )
            if "position" in clause and matched:
                relation, target = clause["position"]
                if matched_groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {name} to be {relation}")
                else:
                    for det in found:
                        for other in matched_groups[target]:
                            holds = relative_position(det.box, other.box)
                            if relation not in holds:
                                correct = matched = False
                                reasons.append(
                                    f"expected {name} {relation} target, found "
                                    + f"{' and '.join(r for r in RELATIONS if r in holds)} target"
                                )
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for clause in metadata.get("exclude", []):
        name = clause["class"]
        if len(objects.get(name, [])) >= clause["count"]:
            correct = False
            reasons.append(f"expected {name}<{clause['count']}, found {len(objects[name])}")
    return correct, "\n".join(reasons)


def image_result(detections: Sequence[Detection], metadata: dict, filename: str) -> dict:
    """One line of GenEval's results.jsonl: filename, tag, prompt, correct, reason, metadata, details.

    metadata and details are JSON strings as GenEval writes them; details maps each class to its kept
    boxes [x1, y1, x2, y2, score] (GenEval's mmdet box rows).
    """
    objects = keep_detections(detections, metadata["tag"])
    correct, reason = judge(objects, metadata)
    details = {name: [[*d.box, d.score] for d in found] for name, found in objects.items()}
    return {
        "filename": filename, "tag": metadata["tag"], "prompt": metadata["prompt"], "correct": correct,
        "reason": reason, "metadata": json.dumps(metadata), "details": json.dumps(details),
    }


class GenevalReport(NamedTuple):
    """Per-image results (results.jsonl lines), per-task scores, overall score."""

    results: list[dict]
    task_scores: dict[str, float]
    overall: float


def correct_by_task(results: Sequence[dict]) -> dict[str, np.ndarray]:
    """Per task, in order of first appearance, the bool array of its images' `correct`: what a bootstrap resamples."""
    by_task: dict[str, list[bool]] = {}
    for result in results:
        by_task.setdefault(result["tag"], []).append(bool(result["correct"]))
    return {tag: np.asarray(correct, bool) for tag, correct in by_task.items()}


def summarize(results: Sequence[dict]) -> GenevalReport:
    """summary_scores.py: a task's score is the mean of its images' correct; overall the mean over tasks."""
    scores = {tag: float(correct.mean()) for tag, correct in correct_by_task(results).items()}
    overall = float(np.mean(list(scores.values()))) if scores else float("nan")
    return GenevalReport(list(results), scores, overall)

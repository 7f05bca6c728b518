"""The files of the real GenEval (djghosh13/geneval): the image folder it reads, the results it writes.

Layout (its README and generation/diffusers_generate.py; evaluation/evaluate_images.py reads it):

    OUT/00000/metadata.jsonl      the prompt's JSON object (one line of evaluation_metadata.jsonl)
    OUT/00000/samples/0000.png    the prompt's images (GenEval's README names them 0000.png; its
    OUT/00000/samples/0001.png    sample script writes 00000.png; the evaluator takes any \\d+.png)
    OUT/00001/...                 one folder per prompt, its index zero-padded to 5 digits

The evaluator (a CUDA machine with mmdet 2.x and Mask2Former) writes results.jsonl, one JSON line
per image (filename, tag, prompt, correct, reason, metadata, details); ingest_geneval_results()
scores it with summary_scores.py's rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sgbench.errors import SgbenchError
from sgbench.geneval.rules import GenevalReport, summarize


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def export_geneval_layout(
    images: np.ndarray,                  # uint8 (P * K, H, W, 3), prompt-major: image p * K + k is prompt p's k-th
    prompt_metadata: Sequence[dict],     # P GenEval metadata entries
    out_dir: str | Path,                 # must be new or empty
) -> Path:
    """Write GenEval's image folder layout for P prompts with K images each; returns out_dir."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise SgbenchError(f"Expected images uint8 (N, H, W, 3) but got {images.dtype} {tuple(images.shape)}")
    if not prompt_metadata or len(images) % len(prompt_metadata):
        raise SgbenchError(
            f"Expected the same number of images for every prompt but got {len(images)} images "
            f"for {len(prompt_metadata)} prompts"
        )
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SgbenchError(f"Expected a new or empty directory for the GenEval layout but {out} is not empty")
    per_prompt = len(images) // len(prompt_metadata)
    for p, entry in enumerate(prompt_metadata):
        samples = out / f"{p:05d}" / "samples"
        samples.mkdir(parents=True)
        # json.dump without a newline, as diffusers_generate.py writes it; the evaluator json.load()s it
        _write_atomic(samples.parent / "metadata.jsonl", lambda tmp: tmp.write_text(json.dumps(entry)))
        for k in range(per_prompt):
            image = Image.fromarray(images[p * per_prompt + k])
            _write_atomic(samples / f"{k:04d}.png", lambda tmp: image.save(tmp, format="PNG"))
    return out


def write_results_jsonl(results: Sequence[dict], path: str | Path) -> Path:
    """GenEval's results.jsonl: a JSON object per image (filename, tag, prompt, correct, reason, metadata, details)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in results)))
    return path


def ingest_geneval_results(results_jsonl: str | Path) -> GenevalReport:
    """Read a results.jsonl (from GenEval's evaluate_images.py or write_results_jsonl) and score it."""
    path = Path(results_jsonl)
    if not path.is_file():
        raise SgbenchError(f"Expected GenEval's results.jsonl at {path} but there is no such file")
    results = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as e:
            raise SgbenchError(f"Expected one JSON object per line in {path} but line {number} is not: {e}") from None
        if not isinstance(result, dict) or not isinstance(result.get("tag"), str) or not isinstance(
            result.get("correct"), bool
        ):
            raise SgbenchError(
                f"Expected a GenEval result with a string 'tag' and a boolean 'correct' on line {number} of {path}"
            )
        results.append(result)
    if not results:
        raise SgbenchError(f"Expected at least one result in {path} but it is empty")
    return summarize(results)

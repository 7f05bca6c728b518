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

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sgbench.data.geneval_words import TASKS
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_write_bytes, atomic_write_text, write_jsonl
from sgbench.evaluation.geneval.rules import GenevalReport, summarize


def check_layout_dir(out: Path) -> None:
    """GenEval's layout goes into a new or empty folder (the evaluator reads every numbered subfolder)."""
    if out.exists() and not out.is_dir():
        raise SgbenchError(f"Expected a new or empty folder for the GenEval layout but {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        raise SgbenchError(f"Expected a new or empty folder for the GenEval layout but {out} is a folder that is not empty")


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
    check_layout_dir(out)
    per_prompt = len(images) // len(prompt_metadata)
    try:
        for p, entry in enumerate(prompt_metadata):
            samples = out / f"{p:05d}" / "samples"
            samples.mkdir(parents=True)
            # json.dump without a newline, as diffusers_generate.py writes it; the evaluator json.load()s it
            atomic_write_text(samples.parent / "metadata.jsonl", json.dumps(entry))
            for k in range(per_prompt):
                png = io.BytesIO()
                Image.fromarray(images[p * per_prompt + k]).save(png, format="PNG")
                atomic_write_bytes(samples / f"{k:04d}.png", png.getvalue())
    except OSError as e:
        raise SgbenchError(f"Cannot write the GenEval layout into {out}: {e.strerror or e}") from None
    return out


def write_results_jsonl(results: Sequence[dict], path: str | Path) -> Path:
    """GenEval's results.jsonl: a JSON object per image (filename, tag, prompt, correct, reason, metadata, details)."""
    return write_jsonl(path, results)


def read_geneval_results(results_jsonl: str | Path) -> list[tuple[int, dict]]:
    """(line number, result) of every result in a results.jsonl, each checked to be a JSON object with
    one of GenEval's six tags and a boolean `correct`; blank lines are skipped."""
    path = Path(results_jsonl)
    if not path.is_file():
        raise SgbenchError(f"Expected GenEval's results.jsonl at {path} but there is no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SgbenchError(f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}): expected "
                           "GenEval's results.jsonl, one JSON object per line") from None
    except OSError as e:
        raise SgbenchError(f"Cannot read {path}: {e.strerror or e}") from None
    results = []
    for number, line in enumerate(text.splitlines(), 1):
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
        if result["tag"] not in TASKS:
            raise SgbenchError(f"Expected one of GenEval's tags ({', '.join(TASKS)}) on line {number} of {path} "
                               f"but got {result['tag']!r}")
        results.append((number, result))
    if not results:
        raise SgbenchError(f"Expected at least one result in {path} but it is empty")
    return results


def ingest_geneval_results(results_jsonl: str | Path) -> GenevalReport:
    """Read a results.jsonl (from GenEval's evaluate_images.py or write_results_jsonl) and score it."""
    return summarize([result for _, result in read_geneval_results(results_jsonl)])

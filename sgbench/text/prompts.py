"""Prompt files, and the conditioning of a batch of samples drawn from a prompt list.

Two formats, told apart by the first non-blank line:
- GenEval's prompts/evaluation_metadata.jsonl: one JSON object per line with a `prompt` (and the
  metadata GenEval's evaluator reads back: tag, include, exclude), kept whole;
- plain text: one prompt per line.
Blank lines are skipped in both. Samples map to prompts as GenEval lays them out: sample i shows
prompt i // images_per_prompt (GenEval takes 4 images per prompt).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import cached_sha256
from sgbench.runs.rundir import RunDir

FORMATS = "GenEval's evaluation_metadata.jsonl (one JSON object with 'prompt' per line) or a text file with one prompt per line"


def read_prompts(path: str | Path) -> list[dict]:
    """The prompts of a file as dicts with at least `prompt` (GenEval metadata objects kept whole)."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Prompt file not found: {path} (expected {FORMATS})")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SgbenchError(f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}): save it as UTF-8") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise SgbenchError(f"{path} has no prompts (expected {FORMATS})")
    if not lines[0][1].startswith("{"):
        return [{"prompt": line} for _, line in lines]
    records = []
    for n, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SgbenchError(f"{path} line {n} is not valid JSON ({e.msg} at column {e.colno}); expected {FORMATS}") from None
        if not isinstance(record, dict) or "prompt" not in record:
            raise SgbenchError(f"{path} line {n} has no 'prompt': expected a JSON object with 'prompt' on every line")
        if not isinstance(record["prompt"], str) or not record["prompt"].strip():
            raise SgbenchError(f"{path} line {n}: expected 'prompt' to be a non-empty string but got {record['prompt']!r}")
        records.append(record)
    return records


def prompt_set_name(path: str | Path) -> str:
    """How metrics name a prompt set: its folder and file name (geneval_animal/evaluation_metadata.jsonl)."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def run_prompts(run: RunDir) -> tuple[list[dict], np.ndarray, str]:
    """(the run's prompt records, each sample's prompt index, the prompt set's name), checked: the
    prompts file must still be the one the run was sampled from."""
    if not run.samples.is_file():
        raise SgbenchError(f"Expected a sampled run directory but {run.path} has no samples.npz")
    info = run.info()
    if info.conditioning is None:
        raise SgbenchError(f"{run.path} is a class-conditional run; this scores text-to-image runs (sample --prompts)")
    path = Path(info.conditioning["prompts"])
    if cached_sha256(path) != info.conditioning["sha256"]:
        raise SgbenchError(f"The prompts file {path} is not the one {run.path} was sampled from (its sha256 changed or it is gone)")
    records = read_prompts(path)
    with np.load(run.samples) as f:
        index = f["prompt_index"]
    return records, index, prompt_set_name(path)

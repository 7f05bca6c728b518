"""Prompt files, and the conditioning of a batch of samples drawn from a prompt list.

Two formats, told apart by the first non-blank line:
- GenEval's prompts/evaluation_metadata.jsonl: one JSON object per line with a `prompt` (and the
  metadata GenEval's evaluator reads back: tag, include, exclude), kept whole;
- plain text: one prompt per line.
Blank lines are skipped in both. Samples map to prompts as GenEval lays them out: sample i shows
prompt i // images_per_prompt (GenEval takes 4 images per prompt).

A text run keeps a byte-for-byte copy of its prompts file (docs/design.md, "Runs"), so it is scored
against the prompts it was sampled from even after the original file moved or changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import cached_sha256
from sgbench.runs.rundir import RunDir

FORMATS = "GenEval's evaluation_metadata.jsonl (one JSON object with 'prompt' per line) or a text file with one prompt per line"


@dataclass(frozen=True)
class PromptFile:
    """A prompts file read once: its bytes (what a run copies), their sha256 (what a run's identity and
    run.json record) and the prompt records parsed from those same bytes."""

    path: Path
    data: bytes
    sha256: str
    records: list[dict]
    is_jsonl: bool  # GenEval metadata (one JSON object per line); False: one prompt per line

    @property
    def texts(self) -> list[str]:
        return [record["prompt"] for record in self.records]


def read_prompt_file(path: str | Path) -> PromptFile:
    """A prompts file's bytes, sha256 and records, from one read (one-line errors for a bad file)."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Prompt file not found: {path} (expected {FORMATS})")
    data = path.read_bytes()
    records, is_jsonl = _parse(data, path)
    return PromptFile(path=path, data=data, sha256=hashlib.sha256(data).hexdigest(), records=records, is_jsonl=is_jsonl)


def read_prompts(path: str | Path) -> list[dict]:
    """The prompts of a file as dicts with at least `prompt` (GenEval metadata objects kept whole)."""
    return read_prompt_file(path).records


def _parse(data: bytes, path: Path) -> tuple[list[dict], bool]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SgbenchError(f"{path} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}): save it as UTF-8") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise SgbenchError(f"{path} has no prompts (expected {FORMATS})")
    if not lines[0][1].startswith("{"):
        return [{"prompt": line} for _, line in lines], False
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
    return records, True


def prompt_set_name(path: str | Path) -> str:
    """How metrics name a prompt set: its folder and file name (geneval_animal/evaluation_metadata.jsonl)."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def run_prompts(run: RunDir) -> tuple[list[dict], np.ndarray, str]:
    """(the run's prompt records, each sample's prompt index, the prompt set's name), read from the run's
    own copy of its prompts file; runs sampled before runs kept a copy read the file at the path they
    recorded. Either must still have the sha256 that run.json records."""
    if not run.samples.is_file():
        raise SgbenchError(f"Expected a sampled run directory but {run.path} has no samples.npz")
    info = run.info()
    if info.conditioning is None:
        raise SgbenchError(f"{run.path} is a class-conditional run; this scores text-to-image runs (sample --prompts)")
    recorded = info.conditioning["sha256"]
    copy = run.prompts_copy()
    if copy is not None:
        if cached_sha256(copy) != recorded:
            raise SgbenchError(f"{copy} is not the prompts file {run.path} was sampled from (its sha256 is not the one run.json "
                               f"records, or it is gone): restore it, or sample the run again into another --out")
        records = read_prompts(copy)
    else:
        path = Path(info.conditioning["prompts"])
        if cached_sha256(path) != recorded:
            raise SgbenchError(f"The prompts file {path} is not the one {run.path} was sampled from (its sha256 changed or it is gone)")
        records = read_prompts(path)
    with np.load(run.samples) as f:
        index = f["prompt_index"]
    return records, index, prompt_set_name(info.conditioning["prompts"])  # the set's name, not the copy's

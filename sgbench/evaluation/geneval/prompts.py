"""The embedded GenEval prompt set: GenEval's generator (prompts/create_prompts.py) over the ten animals.

GenEval's procedure, task by task and in its order: single_object names every class once; two_object,
counting (2 to 4), colors, position (left of, right of, above, below) and color_attr draw classes,
counts, colours and relations with numpy's default_rng, exactly as create_prompts.py does (its rule
against "[colour] person" has nothing to exclude here). Duplicates are dropped, as GenEval drops them.
One change, forced by having ten classes instead of 80: GenEval draws 100 per task and keeps the
distinct ones (giving its file's 80/99/80/94/100/100); here each task draws until it has that many
distinct prompts or every prompt the task can make (10 single objects, 90 ordered pairs, 30
counts), so the set is 10/90/30/94/100/100 = 424 prompts, not a hundred draws collapsed to a few dozen.

The set ships as sgbench/data/geneval_animal/evaluation_metadata.jsonl (GenEval's file name and
format: one JSON object per line, keys tag, include, exclude?, prompt); its README gives the seed
and the command that regenerates it. Its prompt strings are the captions a T2I model must never see
in training: `training_scene(..., held_out=held_out_prompts())`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sgbench.data.animal import CLASS_NAMES
from sgbench.data.scenes import COLORS, MAX_COUNT, MIN_COUNT, RELATIONS, TASKS, describe
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import write_jsonl

PROMPTS_FILE = Path(__file__).resolve().parents[2] / "data" / "geneval_animal" / "evaluation_metadata.jsonl"
DEFAULT_SEED = 43  # create_prompts.py's default seed
TARGET_PER_TASK = {  # distinct prompts per task in GenEval's own evaluation_metadata.jsonl
    "single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100,
}
_K, _C = len(CLASS_NAMES), len(COLORS)
DISTINCT_PER_TASK = {  # how many different prompts each task can make over these classes
    "single_object": _K, "two_object": _K * (_K - 1), "counting": _K * (MAX_COUNT - MIN_COUNT + 1),
    "colors": _K * _C, "position": _K * (_K - 1) * len(RELATIONS), "color_attr": (_K * (_K - 1)) * (_C * (_C - 1)),
}
_COLOR_NAMES = tuple(COLORS)


# One draw per task, with create_prompts.py's calls in its order (so the random stream is GenEval's).

def _two_object(rng: np.random.Generator) -> dict:
    a, b = rng.choice(_K, size=2, replace=False)
    return describe([(CLASS_NAMES[a], 1, None), (CLASS_NAMES[b], 1, None)])[1]


def _counting(rng: np.random.Generator) -> dict:
    a = rng.choice(_K)
    n = int(rng.integers(MIN_COUNT, MAX_COUNT, endpoint=True))
    return describe([(CLASS_NAMES[a], n, None)])[1]


def _colors(rng: np.random.Generator) -> dict:
    a = rng.choice(_K)
    color = _COLOR_NAMES[rng.choice(_C)]
    return describe([(CLASS_NAMES[a], 1, color)])[1]


def _position(rng: np.random.Generator) -> dict:
    a, b = rng.choice(_K, size=2, replace=False)
    relation = RELATIONS[rng.choice(len(RELATIONS))]
    return describe([(CLASS_NAMES[a], 1, None), (CLASS_NAMES[b], 1, None)], relation)[1]


def _color_attr(rng: np.random.Generator) -> dict:
    a, b = rng.choice(_K, size=2, replace=False)
    ca, cb = rng.choice(_C, size=2, replace=False)
    return describe([(CLASS_NAMES[a], 1, _COLOR_NAMES[ca]), (CLASS_NAMES[b], 1, _COLOR_NAMES[cb])])[1]


_DRAW = {"two_object": _two_object, "counting": _counting, "colors": _colors, "position": _position,
         "color_attr": _color_attr}


def generate_prompts(seed: int = DEFAULT_SEED) -> list[dict]:
    """The embedded GenEval prompt set for `seed`: GenEval metadata dicts in GenEval's task order."""
    rng = np.random.default_rng(seed)
    order = rng.choice(_K, size=_K, replace=False)  # single_object: every class, in a random order
    prompts = [describe([(CLASS_NAMES[i], 1, None)])[1] for i in order]
    for task in TASKS[1:]:
        wanted = min(TARGET_PER_TASK[task], DISTINCT_PER_TASK[task])
        seen: set[str] = set()
        while len(seen) < wanted:
            entry = _DRAW[task](rng)
            key = json.dumps(entry, sort_keys=True)
            if key not in seen:
                seen.add(key)
                prompts.append(entry)
    return prompts


def write_prompts(path: str | Path, seed: int = DEFAULT_SEED) -> list[dict]:
    """Write generate_prompts(seed) as GenEval's evaluation_metadata.jsonl (atomically); returns the prompts."""
    if seed < 0:
        raise SgbenchError(f"Expected --seed >= 0 but got {seed}")
    prompts = generate_prompts(seed)
    write_jsonl(path, prompts)
    return prompts


def load_prompts(path: str | Path = PROMPTS_FILE) -> list[dict]:
    """GenEval metadata entries, one per line of an evaluation_metadata.jsonl."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Expected a GenEval evaluation_metadata.jsonl at {path} but there is no such file")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise SgbenchError(f"Expected one JSON object per line in {path} but line {number} is not: {e}") from None
        if not isinstance(entry, dict) or not {"tag", "include", "prompt"} <= entry.keys():
            raise SgbenchError(f"Expected tag, include and prompt on line {number} of {path} but got {line[:80]}")
        entries.append(entry)
    return entries


def held_out_prompts() -> frozenset[str]:
    """The embedded prompt strings: pass to training_scene(..., held_out=...) so that no caption is one."""
    return frozenset(entry["prompt"] for entry in load_prompts())

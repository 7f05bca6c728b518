"""The golden gate: every registered guidance method on the shipped routed backbone and on the shipped
text-to-image model, and every method the masked and dense backbones run in the bench, sampled at a
small fixed size and compared tightly with tests/golden/guidance.json.

A formula change moves pixels even when it does not move FD: each configuration's 16 samples (fixed
per-sample seeds, 4 solver steps) are summarised per sample by a 4x4 average pool of the final
image in model space, and compared within 2e-4 (float noise between CPUs is ~1e-6 here). GFLOPs per
image under every convention are compared exactly, so a change to a token-count rule fails too.

Regenerate after an INTENDED change (and say why in the commit):

    python -m pytest tests/test_golden.py --regen-golden
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sgbench.core.flops import cost_report
from sgbench.core.guidance import Models, build_guidance
from sgbench.models.checkpoint import load_model
from sgbench.utils.resources import assets_dir
from sgbench.sampling import class_conditioning, eval_times, generate
from sgbench.core.conditioning import PromptSet, prompt_conditioning

GOLDEN = Path(__file__).parent / "golden" / "guidance.json"
NUM, STEPS, SEED, ATOL = 16, 4, 0, 2e-4
GUIDES = {"animal-routed": "animal-routed-step900", "animal-scenes-routed": "animal-scenes-routed-step1200"}
# Text cases: 4 prompts x 4 images, one prompt from each of four GenEval tasks.
PROMPTS = ["a photo of a cow", "a photo of two dogs", "a photo of a red cow", "a photo of a zebra right of a bear"]

# (backbone, label, method, params, solver): every method, each sparsity schedule kind, an interval,
# APG's momentum and norm threshold, and the Heun corrector.
CASES = [
    ("animal-routed", "unguided", "unguided", {}, "euler"),
    ("animal-routed", "cfg", "cfg", {"scale": 2.0}, "euler"),
    ("animal-routed", "cfg-interval", "cfg", {"scale": 2.0, "interval": "0.3:0.8"}, "euler"),
    ("animal-routed", "cfg-heun", "cfg", {"scale": 2.0}, "heun"),
    ("animal-routed", "ag", "ag", {"scale": 2.0}, "euler"),
    ("animal-routed", "icg", "icg", {"scale": 2.0}, "euler"),
    ("animal-routed", "apg", "apg", {"scale": 3.0, "eta": 0.5, "momentum": -0.5, "norm_threshold": 6.0}, "euler"),
    ("animal-routed", "sg-flops", "sg", {"gs": 0.5, "gw": 0.9, "scale": 2.0}, "euler"),
    ("animal-routed", "sg-strong", "sg", {"gs": 0.0, "gw": 0.75, "scale": 3.0}, "euler"),
    ("animal-routed", "sg-linear", "sg", {"gs": "linear:0.1:0.4", "gw": "linear:0.95:0.6", "scale": 2.0}, "euler"),
    ("animal-routed", "sg-no-guidance", "sg", {"gs": 0.75, "gw": 0.9, "scale": 1.0}, "euler"),
    ("animal-routed", "cfg+sg", "cfg+sg", {"gs": 0.2, "gw": 0.7, "scale": 2.0}, "euler"),
    ("animal-routed", "ag+sg", "ag+sg", {"scale": 2.0}, "euler"),
    ("animal-masked", "unguided", "unguided", {}, "euler"),
    ("animal-masked", "cfg", "cfg", {"scale": 2.0}, "euler"),
    ("animal-masked", "sg-flops", "sg", {"gs": 0.5, "gw": 0.9, "scale": 2.0}, "euler"),
    ("animal-masked", "sg-strong", "sg", {"gs": 0.0, "gw": 0.75, "scale": 3.0}, "euler"),
    ("animal-masked", "cfg+sg", "cfg+sg", {"gs": 0.2, "gw": 0.7, "scale": 2.0}, "euler"),
    ("animal-dense", "unguided", "unguided", {}, "euler"),
    ("animal-dense", "cfg", "cfg", {"scale": 2.0}, "euler"),
    ("animal-scenes-routed", "unguided", "unguided", {}, "euler"),
    ("animal-scenes-routed", "cfg", "cfg", {"scale": 2.5}, "euler"),
    ("animal-scenes-routed", "ag", "ag", {"scale": 2.5}, "euler"),
    ("animal-scenes-routed", "icg", "icg", {"scale": 2.5}, "euler"),
    ("animal-scenes-routed", "apg", "apg", {"scale": 2.5}, "euler"),
    ("animal-scenes-routed", "sg", "sg", {"gs": 0.1, "gw": 0.8, "scale": 1.8}, "euler"),
    ("animal-scenes-routed", "cfg+sg", "cfg+sg", {"gs": 0.2, "gw": 0.7, "scale": 2.5}, "euler"),
    ("animal-scenes-routed", "ag+sg", "ag+sg", {"scale": 2.5}, "euler"),
]


def _id(case) -> str:
    return f"{case[0]}/{case[1]}"


@pytest.fixture(scope="module")
def models():
    names = ("animal-routed", "animal-masked", "animal-dense", "animal-scenes-routed", *GUIDES.values())
    return {name: load_model(assets_dir() / f"{name}.safetensors") for name in names}


def run_case(models, backbone: str, method_name: str, params: dict, solver: str) -> dict:
    """The summary the golden file stores for one configuration."""
    torch.set_num_threads(1)
    method = build_guidance(method_name, **params)
    main = models[backbone]
    guide = models[GUIDES[backbone]] if method.needs_guide else None
    indices = list(range(NUM))
    if main.config.text is None:
        conditioning = class_conditioning(main.config, indices, "balanced", SEED, torch.device("cpu"))
    else:
        conditioning = prompt_conditioning(PromptSet(PROMPTS), indices, NUM // len(PROMPTS))
    x = generate(Models(main, guide), method, conditioning, indices, seed=SEED, steps=STEPS, solver=solver,
                 device=torch.device("cpu"))
    pooled = torch.nn.functional.avg_pool2d(x.double(), x.shape[-1] // 4)  # (16, C, 4, 4)
    flops = cost_report(method, main.config, eval_times(STEPS, solver), guide.config if guide else None)
    return {"pooled": [[round(v, 7) for v in row] for row in pooled.flatten(1).tolist()], "gflops_per_image": flops["per_image"]}


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_golden(models, case, request):
    backbone, label, method, params, solver = case
    got = run_case(models, backbone, method, params, solver)
    key = _id(case)
    if request.config.getoption("--regen-golden"):
        stored = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        stored[key] = {"method": method, "params": params, "solver": solver, **got}
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
        return
    want = json.loads(GOLDEN.read_text())[key]
    assert (want["method"], want["params"], want["solver"]) == (method, params, solver), "the case changed: regenerate"
    assert want["gflops_per_image"] == got["gflops_per_image"]
    diff = np.abs(np.asarray(want["pooled"]) - np.asarray(got["pooled"])).max()
    assert diff <= ATOL, f"{key}: samples moved by {diff:.2e} (tolerance {ATOL:.0e})"


def test_golden_file_has_exactly_these_cases():
    assert set(json.loads(GOLDEN.read_text())) == {_id(c) for c in CASES}


def test_golden_covers_every_registered_method():
    from sgbench.core.guidance import REGISTRY

    assert {c[2] for c in CASES if c[0] == "animal-routed"} == set(REGISTRY)
    assert {c[2] for c in CASES if c[0] == "animal-scenes-routed"} == set(REGISTRY)

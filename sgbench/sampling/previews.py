"""Preview grids: a class model's classes, a text model's prompts (labelled), for training previews and
model cards. Unguided, few steps; each sample starts from its own noise, as in a run."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from sgbench.core import seeding
from sgbench.core.conditioning import PromptConditioning, PromptSet
from sgbench.runs.grid import save_grid, save_labelled_grid
from sgbench.sampling.decoding import decode_pixels
from sgbench.sampling.run import generate
from sgbench.sampling.solvers import integrate

# One prompt per GenEval task (single object, two objects, counting, colours, position, colour
# attribution) and the empty prompt (the null condition): the rows of a training preview.
PREVIEW_PROMPTS = (
    "a photo of a giraffe",
    "a photo of a cat and a horse",
    "a photo of three sheeps",
    "a photo of a red elephant",
    "a photo of a zebra left of a bear",
    "a photo of a blue dog and a yellow cow",
    "",
)


def prompt_grid(
    models,
    method,
    prompts: Sequence[str],
    path: Path,
    *,
    per_prompt: int = 6,
    steps: int = 40,
    seed: int = 0,
) -> None:
    """Samples of each prompt under `method`, one row per prompt labelled with it, as one PNG."""

    model = models.main
    device = next(model.parameters()).device
    indices = list(range(len(prompts) * per_prompt))
    conditioning = PromptConditioning(PromptSet(prompts), torch.tensor([i // per_prompt for i in indices]))
    x = generate(models, method, conditioning, indices, seed=seed, steps=steps, solver="euler", device=device)
    save_labelled_grid(decode_pixels(x), [p if p else "(empty prompt)" for p in prompts], Path(path))


def text_preview_grid(model, path: Path, *, prompts: Sequence[str] = PREVIEW_PROMPTS, steps: int = 10) -> None:
    """The training preview: unguided 10-step samples of PREVIEW_PROMPTS (6 per prompt)."""
    from sgbench.core.guidance import Models, build_guidance

    was_training = model.training
    model.eval()
    prompt_grid(Models(model), build_guidance("unguided"), prompts, path, steps=steps)
    model.train(was_training)


def class_preview_grid(model, path: Path, *, per_class: int = 8, steps: int = 10, seed: int = 0) -> None:
    """Unguided Euler samples of the first 10 classes, one row per class, for training previews."""
    cfg = model.config
    classes = min(cfg.num_classes, 10)
    device = next(model.parameters()).device
    indices = list(range(classes * per_class))
    labels = torch.tensor([i // per_class for i in indices], device=device)
    z = seeding.sample_noise(seed, indices, (cfg.in_channels, cfg.input_size, cfg.input_size)).to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = integrate(lambda x, t, n: model(x, torch.full((x.shape[0],), t, device=device), labels), z, steps=steps)
    model.train(was_training)
    if cfg.in_channels in (1, 3):
        save_grid(decode_pixels(x), Path(path), columns=per_class)

"""Grids of text models' samples labelled with their prompts: training previews and model cards.

Runs sample prompts through sgbench.sampling (`sgbench sample --prompts FILE --images-per-prompt K`):
sample i shows prompt i // K (sgbench.text.prompts.prompt_conditioning) and starts from sample i's noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from sgbench.conditioning import PromptConditioning, PromptSet
from sgbench.grid import save_labelled_grid

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
    from sgbench.sampling import decode_pixels, generate

    model = models.main
    device = next(model.parameters()).device
    indices = list(range(len(prompts) * per_prompt))
    conditioning = PromptConditioning(PromptSet(prompts), torch.tensor([i // per_prompt for i in indices]))
    x = generate(models, method, conditioning, indices, seed=seed, steps=steps, solver="euler", device=device)
    save_labelled_grid(decode_pixels(x), [p if p else "(empty prompt)" for p in prompts], Path(path))


def preview_grid(model, path: Path, *, prompts: Sequence[str] = PREVIEW_PROMPTS, steps: int = 10) -> None:
    """The training preview: unguided 10-step samples of PREVIEW_PROMPTS (6 per prompt)."""
    from sgbench.guidance import Models, build_guidance

    was_training = model.training
    model.eval()
    prompt_grid(Models(model), build_guidance("unguided"), prompts, path, steps=steps)
    model.train(was_training)

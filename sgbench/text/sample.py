"""Sampling text models: generation for a batch of samples under any guidance, and training previews.

What a sampler calls for a text model (`sgbench sample --prompts FILE --images-per-prompt K`):
    records    = read_prompts(FILE)                                  # sgbench.text.prompts
    prompt_set = PromptSet([r["prompt"] for r in records])           # encoded once per model, lazily
    for a batch of sample indices:
        conditioning = prompt_conditioning(prompt_set, indices, K)   # sample i shows prompt i // K
        x = generate(models, method, conditioning, indices, seed=..., steps=..., solver=..., device=...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from sgbench import seeding
from sgbench.conditioning import Conditioning, PromptConditioning, PromptSet
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


def generate(
    models,
    method,
    conditioning: Conditioning,
    indices: Sequence[int],
    *,
    seed: int,
    steps: int,
    solver: str = "euler",
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Samples `indices` (x at t = 1, (B, C, H, W) float, CPU) under `method` and `conditioning`.

    The noise of sample i comes from seeding.sample_noise(seed, [i]), as for class models; the
    conditioning holds what differs (class labels, or prompts: `sgbench.text.prompts.prompt_conditioning`).
    """
    from sgbench.sampling import integrate

    cfg = models.main.config
    z = seeding.sample_noise(seed, indices, (cfg.in_channels, cfg.input_size, cfg.input_size)).to(device)
    state = method.new_state(len(indices))

    def velocity(x, t, n):
        return method.velocity(
            models, x, t, step=n, indices=indices, seed=seed, state=state, conditioning=conditioning
        )

    with torch.no_grad():
        x = integrate(velocity, z, steps=steps, solver=solver)
    return x.cpu()


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
    from sgbench.sampling import decode_pixels

    model = models.main
    device = next(model.parameters()).device
    indices = list(range(len(prompts) * per_prompt))
    conditioning = PromptConditioning(PromptSet(prompts), torch.tensor([i // per_prompt for i in indices]))
    x = generate(models, method, conditioning, indices, seed=seed, steps=steps, device=device)
    save_labelled_grid(decode_pixels(x), [p if p else "(empty prompt)" for p in prompts], Path(path))


def preview_grid(model, path: Path, *, prompts: Sequence[str] = PREVIEW_PROMPTS, steps: int = 10) -> None:
    """The training preview: unguided 10-step samples of PREVIEW_PROMPTS (6 per prompt)."""
    from sgbench.guidance import Models, build_guidance

    was_training = model.training
    model.eval()
    prompt_grid(Models(model), build_guidance("unguided"), prompts, path, steps=steps)
    model.train(was_training)

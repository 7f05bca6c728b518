"""Model outputs at t = 1 -> uint8 images: pixel models directly, latent models (4 channels, as SD-VAE
latents) through their VAE (sgbench.models.vae), so a run holds uint8 images exactly as a pixel model's.
The VAE's identity is part of the run's identity and of run.json."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from sgbench.models.sit import ModelConfig
from sgbench.utils.errors import SgbenchError


def decode_pixels(x: torch.Tensor) -> np.ndarray:
    """Pixel-space models: [-1, 1] NCHW -> uint8 NHWC. (Latent models go through their VAE.)"""
    x = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


# Latents per VAE decoder forward: one. Convolution libraries choose their algorithm by the batch too, so
# a decoder fed whole shards would tie a sample's pixels to the shard size (docs/design.md, "Numerics");
# one latent at a time is the same computation for every sample, at a small cost next to sampling.
DECODE_BATCH = 1


def is_latent(config: ModelConfig) -> bool:
    """Pixel models see 1 or 3 channels; anything else (SD-VAE: 4) is a latent model."""
    return config.in_channels not in (1, 3)


def make_decoder(model_config: ModelConfig, vae_source: str | None, device: torch.device) -> Callable[[torch.Tensor], np.ndarray]:
    """Model outputs (B, C, H, W) at t = 1 -> uint8 images (B, H', W', 3 or C)."""
    if not is_latent(model_config):
        return decode_pixels
    from sgbench.models.vae import load_vae

    assert vae_source is not None, "resolve_decoder refuses a latent model without a VAE"
    vae = load_vae(vae_source, device=device)  # float32 whatever the sampling precision, as DiT decodes
    return lambda x: vae.decode(x, batch_size=DECODE_BATCH)


def resolve_decoder(config) -> dict | None:
    """The identity of the VAE that decodes a SampleConfig's model (sgbench.models.vae.vae_identity), or None for a
    pixel model: --vae, else the VAE recorded in the checkpoint (`sgbench import --vae`). One line
    naming what to get when a latent model has none."""
    from sgbench.models.checkpoint import load_extra, read_config
    from sgbench.models.vae import HOW_TO_GET, vae_identity

    model = read_config(config.checkpoint)
    if not is_latent(model):
        if config.vae is not None:
            raise SgbenchError(f"--vae decodes latent models, but {config.checkpoint} is a pixel-space model "
                               f"({model.in_channels} channel(s)): drop --vae")
        return None
    source = config.vae or (load_extra(config.checkpoint).get("vae") or {}).get("source")
    if source is None:
        raise SgbenchError(f"{config.checkpoint} is a latent model ({model.in_channels} channels at {model.input_size}x"
                           f"{model.input_size}) and sampling decodes it with its VAE: {HOW_TO_GET}")
    return vae_identity(source)

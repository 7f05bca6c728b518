"""The SD VAE of latent ImageNet-256 (stabilityai/sd-vae-ft-ema or -mse): decode samples, encode data.

diffusers' AutoencoderKL (the optional extra `sgbench[imagenet]`), loaded from a local directory in
diffusers' layout (config.json + diffusion_pytorch_model.safetensors, as save_pretrained writes it)
or from the Hugging Face cache by repository name. sgbench never downloads it (local_files_only).

Latents are the VAE's latents times its scaling_factor (0.18215 for SD), the scale DiT, SiT, MaskDiT
and TREAD train in. `encode` returns the MEAN of the posterior, not a sample: it is deterministic (a
rerun, a resumed run and any number of processes write identical shards), and the SD posterior's
standard deviation is small beside the flow's own noise, which training adds anyway. `decode` rounds
to uint8 as DiT's and SiT's sample_ddp.py do (clamp(127.5 x + 128, 0, 255), then truncation).

`VAE.identity` (config sha256, weights sha256, scaling factor) goes into run.json, the identity of
a sampling run and the manifest of encoded data, so samples or latents from another VAE are never
mixed up. It is computed from the files alone (`vae_identity`), without diffusers or loading weights,
so a run's identity can be checked before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import cached_sha256

DEFAULT_VAE = "stabilityai/sd-vae-ft-ema"  # the paper's VAE (App. A.2)
DEFAULT_SCALING_FACTOR = 0.18215  # diffusers' AutoencoderKL default, SD's latent scale
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
HOW_TO_GET = (
    "download stabilityai/sd-vae-ft-ema (config.json and diffusion_pytorch_model.safetensors) into a "
    "directory and pass it with --vae DIR, or put it in the Hugging Face cache "
    "(`huggingface-cli download stabilityai/sd-vae-ft-ema`) and pass its name"
)


@dataclass
class VAE:
    model: torch.nn.Module  # diffusers.AutoencoderKL, eval mode
    identity: dict  # {"source", "config_sha256", "weights_sha256", "scaling_factor"}

    @property
    def scaling_factor(self) -> float:
        return float(self.identity["scaling_factor"])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, *, batch_size: int = 32) -> np.ndarray:
        """Scaled latents (N, 4, h, w) -> images uint8 (N, 8h, 8w, 3), in batches."""
        dtype = next(self.model.parameters()).dtype
        out = []
        for chunk in latents.split(batch_size):
            x = self.model.decode(chunk.to(self.device, dtype) / self.scaling_factor).sample
            out.append(torch.clamp(127.5 * x.float() + 128.0, 0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 0, 0, 3), np.uint8)

    @torch.no_grad()
    def encode(self, images: np.ndarray | torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
        """Images uint8 (N, H, W, 3) -> scaled posterior means (N, 4, H/8, W/8) float32, in batches."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise SgbenchError(f"Expected uint8 images (N, H, W, 3) but got {images.dtype} {tuple(images.shape)}")
        dtype = next(self.model.parameters()).dtype
        out = []
        for chunk in images.split(batch_size):
            x = chunk.to(self.device).permute(0, 3, 1, 2).to(dtype) / 127.5 - 1  # [-1, 1]
            out.append((self.model.encode(x).latent_dist.mean * self.scaling_factor).float().cpu())
        return torch.cat(out)


def load_vae(source: str | Path = DEFAULT_VAE, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> VAE:
    """The AutoencoderKL in directory `source` (or its `vae/` subfolder), or cached under that hub name."""
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        raise SgbenchError("The VAE needs diffusers: pip install 'sgbench[imagenet]'") from None
    directory = _local_directory(source)
    model = AutoencoderKL.from_pretrained(str(directory), local_files_only=True, torch_dtype=dtype, low_cpu_mem_usage=False)
    identity = vae_identity(source)
    assert identity["scaling_factor"] == float(model.config.scaling_factor), "config.json and diffusers disagree"
    return VAE(model.to(device).eval().requires_grad_(False), identity)


def vae_identity(source: str | Path) -> dict:
    """{"source", "config_sha256", "weights_sha256", "scaling_factor"} of the VAE at `source`, from its files.

    config_sha256 hashes config.json's public fields (diffusers adds private ones such as its version);
    the weights hash is cached per file, so calling this again is cheap.
    """
    directory = _local_directory(source)
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SgbenchError(f"{directory / 'config.json'} is unreadable ({e}): {HOW_TO_GET}") from None
    public = {k: v for k, v in config.items() if not k.startswith("_")}
    weights = next(directory / name for name in WEIGHT_FILES if (directory / name).is_file())
    return {
        "source": str(source),
        "config_sha256": hashlib.sha256(json.dumps(public, sort_keys=True, default=str).encode()).hexdigest(),
        "weights_sha256": cached_sha256(weights),
        "scaling_factor": float(public.get("scaling_factor", DEFAULT_SCALING_FACTOR)),
    }


def upsampling_factor(source: str | Path) -> int:
    """Image pixels per latent along a side, from config.json: 2 ** (len(block_out_channels) - 1), as
    diffusers' pipelines compute it (8 for SD's VAE; diffusers' default block_out_channels is (64,))."""
    config = json.loads((_local_directory(source) / "config.json").read_text())
    return 2 ** (len(config.get("block_out_channels", (64,))) - 1)


def _local_directory(source: str | Path) -> Path:
    path = Path(source)
    for candidate in (path, path / "vae"):
        if (candidate / "config.json").is_file() and any((candidate / n).is_file() for n in WEIGHT_FILES):
            return candidate
    if path.exists() or "/" not in str(source) or str(source).count("/") != 1:
        raise SgbenchError(f"No VAE at '{source}' (expected config.json and {WEIGHT_FILES[0]}): {HOW_TO_GET}")
    try:  # a hub name: its snapshot in the local cache, if any
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(str(source), local_files_only=True))
    except Exception:  # huggingface_hub raises several types for "not cached"
        raise SgbenchError(f"VAE '{source}' is not in the local Hugging Face cache and is never downloaded: {HOW_TO_GET}") from None
    return _local_directory(snapshot)


"""CLIP score (Hessel et al. 2021, torchmetrics' convention): mean over samples of 100 * max(cos(image, text), 0).

Through open_clip with local weights only: the model is built with pretrained=None and its weights
loaded from a file, never from a hub.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import sha256_file
from sgbench.evaluation.base import RANDOM_INIT_SHA, to_rgb_nchw
from sgbench.evaluation.npz import open_images
from sgbench.utils.progress import track

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def build_clip(model_name: str, *, weights: str | Path | None, random_init: bool = False):
    """(open_clip model, tokenizer, weights sha256). random_init: tests only."""
    import open_clip

    if model_name not in open_clip.list_models():
        raise SgbenchError(f"Expected an open_clip model name (e.g. ViT-B-32, ViT-L-14) but got '{model_name}'")
    if not random_init and (weights is None or not Path(weights).is_file()):
        raise SgbenchError(
            f"Expected local open_clip weights for {model_name} (a .bin/.pt/.safetensors state dict, e.g. the "
            f"open_clip_pytorch_model.bin of its hub repository) via --weights PATH but got {weights or 'none'}"
        )
    model = open_clip.create_model(model_name, pretrained=None)
    if not random_init:
        try:
            open_clip.load_checkpoint(model, str(weights))
        except (RuntimeError, KeyError, ValueError) as e:
            raise SgbenchError(f"Expected {model_name} weights in {weights} but loading failed: {e}") from None
    return model.eval().requires_grad_(False), open_clip.get_tokenizer(model_name), (
        RANDOM_INIT_SHA if random_init else sha256_file(weights))


def clip_score(samples: str | Path, prompts: list[str], *, model_name: str = "ViT-B-32", weights=None,
               random_init: bool = False, batch_size: int = 32) -> dict:
    """Mean CLIP score of samples (npz) against their prompts (one per sample, in order)."""
    images = open_images(samples)
    if len(prompts) != images.num_images:
        raise SgbenchError(f"Expected one prompt per sample ({images.num_images}) but got {len(prompts)}")
    model, tokenizer, sha = build_clip(model_name, weights=weights, random_init=random_init)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (OPENAI_MEAN, OPENAI_STD))
    per_image, start = [], 0
    with torch.inference_mode():
        for x in track(images.batches(batch_size), total=-(-images.num_images // batch_size), description="CLIP score"):
            pixels = F.interpolate(to_rgb_nchw(x).float() / 255.0, size=(size, size), mode="bicubic", antialias=True)
            image_emb = F.normalize(model.encode_image((pixels.clamp(0, 1) - mean) / std), dim=-1)
            text_emb = F.normalize(model.encode_text(tokenizer(prompts[start : start + len(x)])), dim=-1)
            per_image.append((100 * (image_emb * text_emb).sum(-1)).clamp_min(0).double().numpy())
            start += len(x)
    scores = np.concatenate(per_image)
    return {"clip_score": float(scores.mean()), "per_image": scores, "num_samples": images.num_images, "model": model_name,
            "weights_sha256": sha}

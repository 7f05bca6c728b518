"""The `open_clip` text encoder's base: a frozen open_clip text tower from a local weights file.

The tower is built with pretrained=None and loaded from `open_clip_weights` (nothing is downloaded),
then frozen. Its token features are computed once per distinct prompt and cached; a trainable linear
layer projects them to the width of the trainable layers. The tower's weights are not part of the
diffusion model's checkpoint (they stay in their own file), and copies of the model (the EMA) share
one tower.

Supported: CLIP-style towers (causal attention, BPE tokenizer, end-of-text token found by argmax, as
CLIP pools), e.g. ViT-B-32, ViT-B-16, ViT-L-14, RN50. Features are the tower's final-norm tokens up to
the end-of-text token; causal attention makes them independent of the padding that follows.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from sgbench.utils.errors import SgbenchError
from sgbench.utils.numerics import PerSampleLinear

CACHE_SIZE = 50_000  # prompts whose tower features are kept (a few KB each: only the real tokens)


def tower_config(model_name: str) -> dict:
    """open_clip's text_cfg for an architecture, with its defaults filled in (for the FLOPs count)."""
    import open_clip

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise SgbenchError(f"Unknown open_clip model '{model_name}'; `python -c 'import open_clip; print(open_clip.list_models())'` lists them")
    text = dict(cfg["text_cfg"])
    text.setdefault("mlp_ratio", 4.0)
    text.setdefault("context_length", 77)
    text["embed_dim"] = cfg["embed_dim"]
    return text


class FrozenOpenClip:
    """An open_clip text tower, frozen, with a per-prompt cache of its token features. Not an
    nn.Module on purpose: its weights stay out of the diffusion model's state dict and optimiser."""

    def __init__(self, model_name: str, weights: str):
        import open_clip

        path = Path(weights)
        if not path.is_file():
            raise SgbenchError(
                f"open_clip weights for {model_name} not found at {path}: download the {model_name} open_clip "
                f"checkpoint (e.g. open_clip_pytorch_model.bin) and put it at that path (the model config's text.open_clip_weights)"
            )
        tower_config(model_name)  # a clear error for an unknown name
        clip = open_clip.create_model(model_name, pretrained=None, force_custom_text=True)
        try:
            open_clip.load_checkpoint(clip, str(path))
        except Exception as e:  # open_clip raises RuntimeError, KeyError, pickling errors...
            raise SgbenchError(f"{path} is not an open_clip {model_name} checkpoint: {str(e).splitlines()[0]}") from None
        self.tower = clip.text.eval().requires_grad_(False)  # the vision tower is dropped
        if self.tower.attn_mask is None or self.tower.pool_type != "argmax" or self.tower.cls_emb is not None:
            raise SgbenchError(f"open_clip model {model_name}: only CLIP-style text towers (causal, argmax pooling) are supported")
        self.tower.output_tokens = True
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.width = self.tower.width
        self.cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __deepcopy__(self, memo):
        return self  # frozen: copies of the model (the EMA) share the tower and its cache

    @torch.no_grad()
    def features(self, prompts: Sequence[str], max_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts -> tower token features (B, max_length, width) float32 (zero padded), mask (B, max_length)."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self.cache))
        if missing:
            ids = self.tokenizer(missing)  # (M, context_length), end of text = the largest id
            self.tower.to(device)  # follows the model (a no-op once there)
            _, tokens = self.tower(ids.to(device))  # (M, context_length, width)
            for prompt, row, t in zip(missing, ids, tokens):
                length = int(row.argmax()) + 1
                if length > max_length:
                    raise SgbenchError(
                        f"Expected a prompt of at most {max_length} tokens for this model but got {length}: '{prompt}'"
                    )
                self.cache[prompt] = t[:length].float().cpu()
                if len(self.cache) > CACHE_SIZE:
                    self.cache.popitem(last=False)
        out = torch.zeros(len(prompts), max_length, self.width)
        mask = torch.zeros(len(prompts), max_length, dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            t = self.cache[prompt]
            self.cache.move_to_end(prompt)
            out[row, : len(t)], mask[row, : len(t)] = t, True
        return out.to(device), mask.to(device)


class OpenClipEmbeddings(nn.Module):
    """prompts -> projected frozen tower features (B, L, D_text), mask (B, L)."""

    def __init__(self, config):
        super().__init__()
        self.max_length = config.max_length
        self.frozen = FrozenOpenClip(config.open_clip_model, config.open_clip_weights)
        if config.max_length > self.frozen.tower.context_length:
            raise SgbenchError(
                f"Expected text max_length <= {self.frozen.tower.context_length} (the context of {config.open_clip_model}) "
                f"but got {config.max_length}"
            )
        self.projection = PerSampleLinear(self.frozen.width, config.width)

    def forward(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        features, mask = self.frozen.features(prompts, self.max_length, self.projection.weight.device)
        return self.projection(features), mask

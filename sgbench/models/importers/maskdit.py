"""Anima-Lab/MaskDiT: a DiT encoder with a MAE-style decoder, trained with EDM preconditioning.

The network is kept and EDM's preconditioning declared in the config (`sgbench.models.sit.EDM`,
sigma_data 0.5, c_noise = log(sigma) / 4): it cannot be folded into weights, since the input scale
c_in and the noise embedding log(sigma) / 4 are non-linear in our t. The forward then returns a
velocity in our convention. Other mappings:

- classes are a one-hot vector through a bias-free linear layer, and MaskDiT's null class is the zero
  vector: our embedding table is that layer's transposed weight plus a zero row for the null class;
- the decoder's input layer (LayerNorm + adaLN + linear) becomes our `Masking(embed_adaln=True)`;
- a checkpoint trained without the MAE loss has no mask token: MaskDiT then uses zeros, and so do we.

MaskDiT's decoder has 16 heads (hard-coded there); its training mask ratio is not in the checkpoint
and is recorded as 0.5, MaskDiT's default (it only sets what `sparsity=None` means).
"""

from __future__ import annotations

import torch

from sgbench.utils.errors import SgbenchError
from sgbench.models.importers.common import (
    DIT_KEYS,
    check_pos_embed,
    dit_shape,
    drop_sigma_channels,
    map_dit,
    refuse_unknown,
    size_name,
    strip_prefix,
)
from sgbench.models.sit import EDM, Masking, ModelConfig

UNSUPPORTED = ("cls_token", "feat_embedder.weight", "cls_token_embedder.weight", "enc_feat_embedder.weight")
DECODER_KEYS = ("decoder_blocks.", "decoder_layer.", "decoder_pos_embed", "mask_token")


def convert(state: dict, *, num_heads: int | None, decoder_heads: int | None) -> tuple[ModelConfig, dict]:
    """MaskDiT (EDMPrecond) state dict -> (our config, our state dict)."""
    state = strip_prefix(state, "model.")
    extra = [k for k in UNSUPPORTED if k in state]
    if extra:
        raise SgbenchError(f"MaskDiT checkpoint uses {extra} (cls token or feature conditioning), which sgbench does not support")
    if "decoder_layer.linear.weight" not in state:
        raise SgbenchError("MaskDiT checkpoint without a decoder (use_decoder=False): only the decoder variant is supported")
    shape = dit_shape(state, num_heads)
    refuse_unknown(state, DIT_KEYS + DECODER_KEYS, "MaskDiT")
    D, grid = shape["hidden_size"], shape["input_size"] // shape["patch_size"]
    width = state["decoder_layer.linear.weight"].shape[0]
    check_pos_embed(state["pos_embed"], D, grid, "pos_embed")
    check_pos_embed(state["decoder_pos_embed"], width, grid, "decoder_pos_embed")
    ours = map_dit(state)
    ours.update({k: v for k, v in state.items() if k.startswith("decoder_blocks.")})
    ours["decoder_embed.weight"] = state["decoder_layer.linear.weight"]
    ours["decoder_embed.bias"] = state["decoder_layer.linear.bias"]
    ours["decoder_embed_modulation.1.weight"] = state["decoder_layer.adaLN_modulation.1.weight"]
    ours["decoder_embed_modulation.1.bias"] = state["decoder_layer.adaLN_modulation.1.bias"]
    ours["mask_token"] = state.get("mask_token", torch.zeros(1, 1, width))
    one_hot = state["y_embedder.embedding_table.weight"]  # (D, K)
    ours["y_embedder.weight"] = torch.cat([one_hot.T, torch.zeros(1, D)])  # null class = zero one-hot
    if shape["learn_sigma"]:
        drop_sigma_channels(ours, shape["in_channels"], shape["patch_size"])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("decoder_blocks."))
    masking = Masking(rate=0.5, decoder_depth=depth, decoder_width=width, decoder_heads=decoder_heads or 16, embed_adaln=True)
    config = ModelConfig(
        **(shape | dict(learn_sigma=False)), num_classes=one_hot.shape[1], time_scale=1.0, masking=masking,
        edm=EDM(sigma_data=0.5), name=f"maskdit:{size_name(shape)}",
    )
    return config, ours

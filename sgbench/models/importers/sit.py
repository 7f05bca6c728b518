"""willisma/SiT: SiT checkpoints such as SiT-XL-2-256.pt (linear interpolant, velocity prediction).

SiT's convention is ours (x_t = t x + (1 - t) noise, v = x - noise, t = 1 is data) and its timestep
embedder takes t in [0, 1] unscaled (time_scale 1). The released models learn sigma: the final layer's
second C channels per pixel are dropped (an ODE sampler never reads them).
"""

from __future__ import annotations

from sgbench.errors import SgbenchError
from sgbench.models.importers.common import check_pos_embed, dit_shape, drop_sigma_channels, map_dit, size_name
from sgbench.models.sit import ModelConfig


def convert(state: dict, *, num_heads: int | None) -> tuple[ModelConfig, dict]:
    """SiT state dict -> (our config, our state dict)."""
    shape = dit_shape(state, num_heads)
    check_pos_embed(state["pos_embed"], shape["hidden_size"], shape["input_size"] // shape["patch_size"], "pos_embed")
    ours = map_dit(state)
    table = state.get("y_embedder.embedding_table.weight")
    if table is None:
        raise SgbenchError("SiT checkpoint without a class embedding: only class-conditional models are supported")
    ours["y_embedder.weight"] = table
    num_classes = table.shape[0] - 1  # trained with class dropout: the last row is the null class
    if shape["learn_sigma"]:
        drop_sigma_channels(ours, shape["in_channels"], shape["patch_size"])
    config = ModelConfig(
        **(shape | dict(learn_sigma=False)), num_classes=num_classes, time_scale=1.0, name=f"sit:{size_name(shape)}"
    )
    return config, ours

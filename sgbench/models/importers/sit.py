"""willisma/SiT: SiT checkpoints such as SiT-XL-2-256.pt (linear interpolant, velocity prediction).

SiT's convention is ours (x_t = t x + (1 - t) noise, v = x - noise, t = 1 is data) and its timestep
embedder takes t in [0, 1] unscaled (time_scale 1). The released models learn sigma: the final layer's
second C channels per pixel are dropped (an ODE sampler never reads them).

SiT's class table has a null row (index num_classes) only when trained with class_dropout_prob > 0.
A training checkpoint records num_classes in its `args`, which tells the two apart; a table without a
null row gets a zero one (the model never learnt an unconditional prediction, and the import says so).
A bare state dict (as SiT-XL-2-256.pt) does not record it and is read as having the null row.
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
)
from sgbench.models.sit import ModelConfig


def recorded_num_classes(checkpoint) -> int | None:
    """num_classes in a SiT training checkpoint's `args` (an argparse.Namespace, or a dict), else None."""
    args = checkpoint.get("args") if isinstance(checkpoint, dict) else None
    value = args.get("num_classes") if isinstance(args, dict) else getattr(args, "num_classes", None)
    return value if isinstance(value, int) else None


def convert(state: dict, *, num_heads: int | None, num_classes: int | None = None) -> tuple[ModelConfig, dict]:
    """SiT state dict -> (our config, our state dict); `num_classes` as the training args record it, if known."""
    shape = dit_shape(state, num_heads)
    refuse_unknown(state, DIT_KEYS, "SiT")
    check_pos_embed(state["pos_embed"], shape["hidden_size"], shape["input_size"] // shape["patch_size"], "pos_embed")
    ours = map_dit(state)
    table = state.get("y_embedder.embedding_table.weight")
    if table is None:
        raise SgbenchError("SiT checkpoint without a class embedding: only class-conditional models are supported")
    rows = table.shape[0]
    if num_classes is None:
        num_classes = rows - 1  # not recorded: SiT's default training (class dropout 0.1) has the null row last
    elif rows == num_classes:  # trained with class_dropout_prob=0: no null row; ours needs one
        table = torch.cat([table, torch.zeros(1, table.shape[1])])
    elif rows != num_classes + 1:
        raise SgbenchError(
            f"SiT checkpoint's class table has {rows} rows but its args.num_classes is {num_classes} "
            f"(expected {num_classes + 1} with the null class, or {num_classes} without): cannot tell which class is which"
        )
    ours["y_embedder.weight"] = table
    if shape["learn_sigma"]:
        drop_sigma_channels(ours, shape["in_channels"], shape["patch_size"])
    config = ModelConfig(
        **(shape | dict(learn_sigma=False)), num_classes=num_classes, time_scale=1.0, name=f"sit:{size_name(shape)}"
    )
    return config, ours

"""CompVis/tread: the official TREAD code's DiT (dit.py), trained with rf.py or edm.py.

Which objective made the checkpoint shows in its keys: edm.py's EDMPrecond wraps the network as
`.model` (keys `model.blocks.0...`, the repository's default train.py), rf.py uses it bare.

- rf.py: x_t = (1 - t) x + t noise, the network predicts v = noise - x, and t in [0, 1] goes into the
  timestep embedder unscaled. So t_ours = 1 - t_theirs and v_ours = -v_theirs: the time reversal is
  folded into the timestep MLP's first layer (`common.reverse_time`, exact), the sign into the final
  layer, and time_scale is 1.
- edm.py: EDM preconditioning with sigma_data 0.5 and c_noise = log(sigma) / 4 into the embedder;
  kept as the model's `edm` preconditioning (a velocity comes out, see `sgbench.models.sit.EDM`).

Routes are not in TREAD checkpoints (they live in its hydra config: start_layer_idx, end_layer_idx,
selection_ratio, end inclusive, selection_ratio = fraction dropped): give them as routes, and they are
recorded in the imported model's config.
"""

from __future__ import annotations

from sgbench.errors import SgbenchError
from sgbench.models.importers.common import (
    check_pos_embed,
    dit_shape,
    drop_sigma_channels,
    map_dit,
    negate_output,
    reverse_time,
    size_name,
    strip_prefix,
)
from sgbench.models.sit import EDM, ModelConfig, Route


def convert(state: dict, *, routes: tuple[Route, ...], num_heads: int | None) -> tuple[ModelConfig, dict]:
    """TREAD state dict -> (our config, our state dict)."""
    edm = any(k.startswith("model.") for k in state)
    state = strip_prefix(state, "model.")
    if "y_embedder.embedding_table.weight" not in state:
        raise SgbenchError("TREAD checkpoint without a class embedding (y_embedder.embedding_table): only class-conditional models are supported")
    shape = dit_shape(state, num_heads)
    check_pos_embed(state["pos_embed"], shape["hidden_size"], shape["input_size"] // shape["patch_size"], "pos_embed")
    ours = map_dit(state)
    ours["y_embedder.weight"] = state["y_embedder.embedding_table.weight"]  # TREAD always has the null row
    if shape["learn_sigma"]:
        drop_sigma_channels(ours, shape["in_channels"], shape["patch_size"])
    if not edm:
        reverse_time(ours)
        negate_output(ours)
    config = ModelConfig(
        **(shape | dict(learn_sigma=False)), num_classes=ours["y_embedder.weight"].shape[0] - 1, time_scale=1.0,
        routes=tuple(routes), edm=EDM(sigma_data=0.5) if edm else None,
        name=f"tread-{'edm' if edm else 'rf'}:{size_name(shape)}",
    )
    return config, ours

"""CompVis/tread: the official TREAD code's DiT (dit.py), trained with rf.py or edm.py.

Which objective made the checkpoint shows in its keys when the network was saved in edm.py's
EDMPrecond, which wraps it as `.model` (keys `model.blocks.0...`, the repository's default train.py).
A bare network's keys do not tell: rf.py trains it bare, and an EDM network can be saved without its
wrapper. So `preconditioning` ('rf' or 'edm') is required for a bare state dict, optional for a
wrapped one, and refused when it contradicts the wrapper.

- rf.py: x_t = (1 - t) x + t noise, the network predicts v = noise - x, and t in [0, 1] goes into the
  timestep embedder unscaled. So t_ours = 1 - t_theirs and v_ours = -v_theirs: the time reversal is
  folded into the timestep MLP's first layer (`common.reverse_time`, exact), the sign into the final
  layer, and time_scale is 1.
- edm.py: EDM preconditioning with sigma_data 0.5 and c_noise = log(sigma) / 4 into the embedder;
  kept as the model's `edm` preconditioning (a velocity comes out, see `sgbench.models.sit.EDM`).

Routes are not in TREAD checkpoints (they live in its hydra config: start_layer_idx, end_layer_idx,
selection_ratio, end inclusive, selection_ratio = fraction dropped): give them as routes, and they are
recorded in the imported model's config; a model trained without routing must be declared dense.
"""

from __future__ import annotations

from sgbench.utils.errors import SgbenchError
from sgbench.models.importers.common import (
    DIT_KEYS,
    check_pos_embed,
    dit_shape,
    drop_sigma_channels,
    map_dit,
    negate_output,
    refuse_unknown,
    reverse_time,
    size_name,
    strip_prefix,
)
from sgbench.models.sit import EDM, ModelConfig, Route


PRECONDITIONINGS = ("rf", "edm")


def convert(
    state: dict, *, routes: tuple[Route, ...], num_heads: int | None, preconditioning: str | None = None
) -> tuple[ModelConfig, dict]:
    """TREAD state dict -> (our config, our state dict); `preconditioning` 'rf' or 'edm' (see above)."""
    wrapped = any(k.startswith("model.") for k in state)  # edm.py's EDMPrecond around the network
    if wrapped and preconditioning == "rf":
        raise SgbenchError(
            "--preconditioning rf contradicts the checkpoint: its network is wrapped in edm.py's EDMPrecond "
            "(keys 'model.*'), so it was trained with EDM; give --preconditioning edm or leave it out"
        )
    if not wrapped and preconditioning is None:
        raise SgbenchError(
            "This TREAD checkpoint holds the bare network (no EDMPrecond 'model.*' keys), which both rf.py and "
            "edm.py can save: give --preconditioning rf (trained with rf.py) or --preconditioning edm (edm.py)"
        )
    edm = wrapped or preconditioning == "edm"
    state = strip_prefix(state, "model.")
    if "y_embedder.embedding_table.weight" not in state:
        raise SgbenchError("TREAD checkpoint without a class embedding (y_embedder.embedding_table): only class-conditional models are supported")
    shape = dit_shape(state, num_heads)
    refuse_unknown(state, DIT_KEYS, "TREAD")
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

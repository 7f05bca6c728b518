"""Import other code's checkpoints into sgbench's SiT: `import_checkpoint(kind, src, dst)`.

    sgbench import tread  latest.pt   tread-xl2.safetensors --route 2:24:0.5
    sgbench import tread  rf-net.pt   tread-rf.safetensors --dense --preconditioning rf
    sgbench import sit    SiT-XL-2-256.pt sit-xl2.safetensors --vae data/sd-vae-ft-ema
    sgbench import maskdit imagenet256-guidance.pt maskdit-xl2.safetensors

One file per codebase (tread.py, sit.py, maskdit.py, dit.py) says what it converts and why; `KINDS`
is the single list of names. Time and output conventions are converted on import, never at sampling
time (docs/design.md). Parity with each original implementation is tested on fixtures that the
original code produced (tests/fixtures/importers/<kind>/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sgbench.utils.errors import SgbenchError
from sgbench.models.checkpoint import check_destination, save_model
from sgbench.models.importers import dit, maskdit, sit, tread
from sgbench.utils.files import sha256_file
from sgbench.models.importers.common import origin, read_checkpoint, state_dict_of
from sgbench.models.sit import ModelConfig, Route, SiT
from sgbench.models.vae import vae_identity

KINDS = {  # name -> the module that converts it (its docstring is the kind's help; dit's says why it is refused)
    "tread": tread,
    "sit": sit,
    "maskdit": maskdit,
    "dit": dit,
}
NAMES = {"tread": "TREAD", "sit": "SiT", "maskdit": "MaskDiT"}


def import_checkpoint(
    kind: str,
    src: str | Path,
    dst: str | Path,
    *,
    routes: Sequence[Route] = (),        # TREAD's routes (not stored in its checkpoints); tread only
    dense: bool = False,                 # tread: trained without routing (instead of routes)
    preconditioning: str | None = None,  # tread: 'rf' or 'edm'; required when the keys cannot tell
    num_heads: int | None = None,        # attention heads; None: DiT's table by width (S 6, B 12, L/XL/H 16)
    decoder_heads: int | None = None,    # MaskDiT decoder heads; None: 16, as MaskDiT hard-codes
    vae: str | Path | None = None,       # the VAE that decodes the model's latents, recorded for `sgbench sample`
    trust_pickle: bool = False,          # allow arbitrary objects in a .pt pickle (runs code!)
) -> SiT:
    """Convert the checkpoint `src` written by another codebase into an sgbench model file `dst`.

    Checkpoints are code: a .pt/.pth file is a pickle, and unpickling one from an untrusted source can
    run arbitrary code. sgbench reads them with torch.load(weights_only=True), which refuses anything
    but tensors and plain containers; --trust-pickle lifts that, for files whose source you trust.
    A training checkpoint's EMA weights are used when it has them. The result is a safetensors file
    with our config (routes, preconditioning, time scale) and the source's name and sha256 in its
    metadata, and the VAE's identity when `vae` is given; returns the model (float32, eval mode).
    """
    if kind not in KINDS:
        raise SgbenchError(f"Expected an import kind in {', '.join(KINDS)} but got '{kind}'")
    if routes and kind != "tread":
        raise SgbenchError(f"Routes are given for TREAD checkpoints only, not for kind '{kind}'")
    if decoder_heads is not None and kind != "maskdit":
        raise SgbenchError(f"decoder_heads is for MaskDiT checkpoints only, not for kind '{kind}'")
    if (dense or preconditioning is not None) and kind != "tread":
        raise SgbenchError(f"--dense and --preconditioning are for TREAD checkpoints only, not for kind '{kind}'")
    if preconditioning is not None and preconditioning not in tread.PRECONDITIONINGS:
        raise SgbenchError(f"Expected --preconditioning rf or edm but got '{preconditioning}'")
    if kind == "tread" and dense and routes:
        raise SgbenchError("Give either --route (a routed TREAD model) or --dense (one trained without routing), not both")
    if kind == "tread" and not dense and not routes:
        raise SgbenchError(
            "TREAD checkpoints do not record their routes: give --route START:END[:RATE] as in the training config "
            "(configs/model/tread.yaml routes DiT-B/2 as --route 2:8:0.5), or --dense for a model trained without routing"
        )
    if kind == "dit":
        raise SgbenchError(dit.REASON)
    check_destination(dst)
    decoder = vae_identity(vae) if vae is not None else None  # a missing VAE fails before the checkpoint is read
    checkpoint = read_checkpoint(src, trust_pickle=trust_pickle)
    state, entry = state_dict_of(checkpoint, src)
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DDP-wrapped saves
    found = origin(checkpoint, state)
    if found is not None and found[0] != kind:  # another codebase's conventions: the velocity would be wrong
        raise SgbenchError(
            f"{src} looks like a {NAMES[found[0]]} checkpoint ({found[1]}), not a {NAMES[kind]} one; "
            f"import it with `sgbench import {found[0]}`"
        )
    notes = {}
    if kind == "tread":
        config, ours = tread.convert(state, routes=tuple(routes), num_heads=num_heads, preconditioning=preconditioning)
    elif kind == "maskdit":
        config, ours = maskdit.convert(state, num_heads=num_heads, decoder_heads=decoder_heads)
    else:
        config, ours = sit.convert(state, num_heads=num_heads, num_classes=sit.recorded_num_classes(checkpoint))
        if state["y_embedder.embedding_table.weight"].shape[0] == config.num_classes:
            notes["null_class"] = ("added as zeros: trained with class_dropout_prob=0, the source has no null class, so "
                                   "guidance by the unconditional model is not meaningful")
    if decoder is not None and config.in_channels in (1, 3):
        raise SgbenchError(f"--vae is for latent models, but {src} takes {config.in_channels}-channel pixels: drop --vae")
    model = _build(config, ours, src)
    extra = {"imported_from": kind, "source": Path(src).name, "source_sha256": sha256_file(src), "source_entry": entry, **notes}
    if decoder is not None:
        extra["vae"] = decoder
    save_model(model, dst, extra=extra)
    return model


def _build(config: ModelConfig, state: dict, src) -> SiT:
    model = SiT(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise SgbenchError(f"{src}: could not map every weight (missing {missing[:3]}, unexpected {unexpected[:3]})")
    wrong = [k for k in expected if expected[k].shape != state[k].shape]
    if wrong:
        raise SgbenchError(f"{src}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")
    model.load_state_dict(state)
    return model.eval()


__all__ = ["KINDS", "import_checkpoint"]

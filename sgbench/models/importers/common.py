"""What every importer shares: reading a foreign checkpoint, inferring a DiT's shape, mapping its keys.

The four codebases we import (CompVis/tread, willisma/SiT, Anima-Lab/MaskDiT, facebookresearch/DiT)
all descend from DiT's models.py: timm-style keys (x_embedder.proj, t_embedder.mlp, blocks.N.attn.qkv,
blocks.N.mlp.fc1, blocks.N.adaLN_modulation.1, final_layer.*) and a fixed 2D sin-cos position
embedding stored as a frozen parameter. They differ in time and output conventions, label embedding
and preconditioning, which each importer converts (docs/design.md, "Importing other code's checkpoints").
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from sgbench.errors import SgbenchError
from sgbench.models.sit import SIZES, sincos_pos_embed

# DiT's size table: the number of heads is not in the weights, so it is looked up by width.
HEADS_BY_WIDTH = {d: heads for d, _, heads in SIZES.values()} | {1280: 16}  # + MaskDiT's DiT-H


# ----------------------------------------------------------------------------------------------------
# Reading


def read_state_dict(src: str | Path, *, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """The weights in `src` and which entry they came from ('ema', 'ema_state_dict', ... or '').

    .safetensors files are read as they are. Pickles (.pt) go through torch.load(weights_only=True)
    (argparse.Namespace, the `args` entry of DiT-style training checkpoints, is allowed) unless
    trust_pickle. A training checkpoint's EMA weights are preferred over its raw model weights.
    """
    src = Path(src)
    if not src.is_file():
        raise SgbenchError(f"Checkpoint to import not found: {src}")
    if src.suffix == ".safetensors":
        obj = load_file(str(src))
    else:
        try:
            if trust_pickle:
                obj = torch.load(src, map_location="cpu", weights_only=False)
            else:
                with torch.serialization.safe_globals([argparse.Namespace]):
                    obj = torch.load(src, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[-1][:200]
            raise SgbenchError(
                f"{src} holds objects other than tensors ({first}); if you trust its source, rerun with "
                "--trust-pickle (a pickle can run arbitrary code), or save its state dict alone"
            ) from None
        except (RuntimeError, EOFError, OSError) as e:
            raise SgbenchError(f"{src} is not a readable torch checkpoint (truncated or corrupt?): {e}") from None
    for entry in ("ema", "ema_state_dict", "model", "model_state_dict", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(entry), dict):
            return _tensors(obj[entry], src), entry
    return _tensors(obj, src), ""


def _tensors(obj, src: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SgbenchError(f"{src}: expected a state dict (names -> tensors) or a training checkpoint holding one")
    return {k: v.float() if v.is_floating_point() else v for k, v in obj.items()}


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop `prefix` from every key (EDMPrecond keeps its network as `.model`; DDP as `module.`)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


# ----------------------------------------------------------------------------------------------------
# Shape


def dit_shape(state: dict[str, torch.Tensor], num_heads: int | None) -> dict:
    """ModelConfig fields of a timm-style DiT state dict (without prefix): sizes, depth, classes, heads."""
    need = ("x_embedder.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight", "final_layer.linear.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise SgbenchError(f"Not a DiT-style state dict: missing {missing}")
    D, C, p, _ = state["x_embedder.proj.weight"].shape
    N = state["pos_embed"].shape[1]
    grid = math.isqrt(N)
    if grid * grid != N:
        raise SgbenchError(f"pos_embed has {N} tokens, not a square grid")
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    out = state["final_layer.linear.weight"].shape[0] // (p * p)
    if out not in (C, 2 * C):
        raise SgbenchError(f"final layer has {out} channels per pixel; expected {C} or {2 * C} (learned sigma)")
    if num_heads is None:
        if D not in HEADS_BY_WIDTH:
            raise SgbenchError(f"Cannot infer the number of attention heads of a width-{D} model; pass --num-heads")
        num_heads = HEADS_BY_WIDTH[D]
    return dict(
        input_size=grid * p, in_channels=C, patch_size=p, hidden_size=D, depth=depth, num_heads=num_heads,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / D, learn_sigma=out == 2 * C,
    )


def size_name(shape: dict) -> str:
    """'XL/2' when the shape is one of DiT's sizes, else 'custom'."""
    for name, (d, depth, heads) in SIZES.items():
        if (shape["hidden_size"], shape["depth"], shape["num_heads"]) == (d, depth, heads):
            return f"{name}/{shape['patch_size']}"
    return "custom"


def check_pos_embed(weight: torch.Tensor, width: int, grid: int, name: str) -> None:
    """Our model computes the fixed sin-cos embedding itself; refuse a checkpoint whose embedding differs."""
    ours = sincos_pos_embed(width, grid)
    if weight.shape[-2:] != ours.shape or not torch.allclose(weight.reshape(ours.shape), ours, atol=1e-5):
        raise SgbenchError(f"{name} is not DiT's fixed 2D sin-cos embedding (learned or altered); cannot import")


# ----------------------------------------------------------------------------------------------------
# Keys


def map_dit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm-style DiT keys -> ours, for the parts every codebase shares (the rest is the caller's)."""
    out = {}
    for k, v in state.items():
        if k.startswith("x_embedder.proj."):
            out["x_embedder." + k.removeprefix("x_embedder.proj.")] = v
        elif k.startswith(("t_embedder.mlp.", "blocks.", "final_layer.")):
            out[k] = v
    return out


def drop_sigma_channels(state: dict[str, torch.Tensor], channels: int, patch: int) -> None:
    """Keep the first `channels` of the final layer's 2C outputs per pixel (rows ordered (p, p, C_out))."""
    for name in ("final_layer.linear.weight", "final_layer.linear.bias"):
        w = state[name]
        state[name] = w.reshape(patch * patch, 2 * channels, *w.shape[1:])[:, :channels].reshape(-1, *w.shape[1:])


def negate_output(state: dict[str, torch.Tensor]) -> None:
    """v -> -v: the final linear layer's weight and bias change sign (exact)."""
    for name in ("final_layer.linear.weight", "final_layer.linear.bias"):
        state[name] = -state[name]


def reverse_time(state: dict[str, torch.Tensor], freq_dim: int = 256) -> None:
    """Fold t_theirs = 1 - t_ours into the timestep MLP's first layer (exact up to rounding).

    The embedding is [cos(t f_k), sin(t f_k)]. With t -> 1 - t, cos((1 - t) f) = cos f cos(t f) + sin f sin(t f)
    and sin((1 - t) f) = sin f cos(t f) - cos f sin(t f): a fixed linear map of our embedding, so
    W [cos, sin]_theirs = W' [cos, sin]_ours with W'_cos = W_cos cos f + W_sin sin f and
    W'_sin = W_cos sin f - W_sin cos f. The frequencies are the model's own float32 ones.
    """
    half = freq_dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half).double()
    w = state["t_embedder.mlp.0.weight"].double()
    w_cos, w_sin = w[:, :half], w[:, half:]
    state["t_embedder.mlp.0.weight"] = torch.cat(
        [w_cos * f.cos() + w_sin * f.sin(), w_cos * f.sin() - w_sin * f.cos()], dim=1
    ).float()

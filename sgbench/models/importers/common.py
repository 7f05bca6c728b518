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

from sgbench.utils.errors import SgbenchError
from sgbench.models.checkpoint import read_tensors
from sgbench.models.config import SIZES
from sgbench.models.layers import sincos_pos_embed

# DiT's size table: the number of heads is not in the weights, so it is looked up by width.
HEADS_BY_WIDTH = {d: heads for d, _, heads in SIZES.values()} | {1280: 16}  # + MaskDiT's DiT-H


# ----------------------------------------------------------------------------------------------------
# Reading


def read_checkpoint(src: str | Path, *, trust_pickle: bool = False):
    """What `src` holds, as saved: a training checkpoint's dict of entries, or a state dict.

    The format is read from the file's first bytes, not its name: .safetensors files (and files that
    start like one) are read as they are; torch.save's zip archives and legacy pickles go through
    torch.load(weights_only=True) (argparse.Namespace, the `args` entry of DiT-style training
    checkpoints, is allowed) unless trust_pickle; anything else is refused as not a checkpoint.
    """
    src = Path(src)
    if not src.is_file():
        raise SgbenchError(f"Checkpoint to import not found: {src}")
    with open(src, "rb") as f:
        head = f.read(16)
    if src.suffix == ".safetensors" or _looks_like_safetensors(head, src.stat().st_size):
        return read_tensors(src)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        seen = f"it starts with {head!r}" if head else "it is empty"
        raise SgbenchError(
            f"{src} is not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle; {seen}): "
            "expected the .pt/.pth file the training code saved, or a .safetensors file"
        )
    try:
        if trust_pickle:
            return torch.load(src, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle and str(e).startswith("Weights only load failed"):  # torch's refusal, not damage
            refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
            what = refused.group(1) if refused else str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:200]
            raise SgbenchError(
                f"{src} holds objects other than tensors ({what}); if you trust its source, rerun with "
                "--trust-pickle (a pickle can run arbitrary code), or save its state dict alone"
            ) from None
        raise SgbenchError(f"{src} is not a readable torch checkpoint (truncated or corrupt?): {_first_line(e)}") from None
    except Exception as e:  # a damaged pickle fails with any type (EOFError, KeyError, IndexError, RuntimeError...)
        raise SgbenchError(f"{src} is not a readable torch checkpoint (truncated or corrupt?): {_first_line(e)}") from None


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with its JSON header's length (8 bytes, little endian) and then '{'."""
    return len(head) >= 9 and head[8:9] == b"{" and 8 < int.from_bytes(head[:8], "little") < size


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0].split('. ')[0][:200]}" if lines else type(e).__name__


def state_dict_of(obj, src: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The weights in a checkpoint and the entry they came from ('ema', 'ema_state_dict', ... or '').
    A training checkpoint's EMA weights are preferred over its raw model weights."""
    for entry in ("ema", "ema_state_dict", "model", "model_state_dict", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(entry), dict):
            return _tensors(obj[entry], Path(src)), entry
    return _tensors(obj, Path(src)), ""


def origin(obj, state: dict[str, torch.Tensor]) -> tuple[str, str] | None:
    """Which codebase wrote a checkpoint, where its layout says: (kind, the evidence), else None.

    CompVis/tread's train.py saves model_state_dict / ema_state_dict / optimizer_state_dict / step;
    willisma/SiT's and Anima-Lab/MaskDiT's save model / ema / opt / args, MaskDiT's networks wrapped in
    EDMPrecond (keys 'model.*') and with a decoder. A bare state dict says nothing (None), except a decoder.
    """
    if any(k.startswith(("decoder_layer.", "model.decoder_layer.")) for k in state):
        return "maskdit", "MaskDiT decoder weights 'decoder_layer.*'"
    if not isinstance(obj, dict):
        return None
    for entry in ("ema_state_dict", "model_state_dict", "optimizer_state_dict"):
        if entry in obj:
            return "tread", f"entry '{entry}'"
    for entry in ("ema", "opt"):
        if entry in obj:
            if any(k.startswith("model.") for k in state):
                return "maskdit", f"entry '{entry}' holding an EDMPrecond network 'model.*'"
            return "sit", f"entry '{entry}'"
    return None


def _tensors(obj, src: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SgbenchError(f"{src}: expected a state dict (names -> tensors) or a training checkpoint holding one")
    return {k: v.float() if v.is_floating_point() else v for k, v in obj.items()}


# The keys every DiT-style network has (a trailing '.' means: and everything below it).
DIT_KEYS = ("x_embedder.proj.", "t_embedder.mlp.", "y_embedder.embedding_table.weight", "pos_embed", "blocks.", "final_layer.")


def refuse_unknown(state: dict[str, torch.Tensor], known: tuple[str, ...], what: str) -> None:
    """Refuse weights the importer would not map: dropping them silently would import another model."""
    unknown = sorted(k for k in state if not any(k == p or (p.endswith(".") and k.startswith(p)) for p in known))
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise SgbenchError(
            f"{what} checkpoint has weights that {what}'s model does not have: {', '.join(unknown[:5])}{more}; "
            "only the original architecture can be imported (a modified one would lose them)"
        )


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

"""Model checkpoints: safetensors weights with the model's config in the file's metadata. No pickle.

One file holds everything needed to rebuild the model (`load_model(path)`), so a checkpoint can't be
paired with the wrong config. Training checkpoints (optimizer, EMA, RNG) live in `sgbench.workflows.train`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import _tmp
from sgbench.models.sit import ModelConfig, SiT

CONFIG_KEY = "sgbench_model_config"


def check_destination(path: str | Path) -> Path:
    """Refuse, before any work, a destination that cannot become a weights file: an existing directory,
    or a path below an existing file."""
    path = Path(path)
    if path.is_dir():
        raise SgbenchError(f"{path} is a directory; give a file path ending in .safetensors (e.g. {path / 'model.safetensors'})")
    folder = next((p for p in path.parents if p.exists()), None)  # the nearest one that exists
    if folder is not None and not folder.is_dir():
        raise SgbenchError(f"Cannot write {path}: {folder} is a file, not a folder")
    return path


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: a killed run never leaves half a file,
    and a failed write (no permission, disk full) is one line and leaves no temporary file behind."""
    path = check_destination(path)
    tmp = _tmp(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates its file 0600; weights are as shareable as any output
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:  # safetensors reports its own I/O errors as SafetensorError
        io_error = re.search(r"I/O error: (.+?) \(os error", str(e))  # its text names its own temporary file
        raise SgbenchError(f"Cannot write {path}: {getattr(e, 'strerror', None) or (io_error and io_error.group(1)) or e}") from None
    finally:
        with contextlib.suppress(OSError):  # gone after a successful rename; never leave it after a failure
            tmp.unlink(missing_ok=True)


def save_model(model: SiT, path: str | Path, *, dtype: torch.dtype | None = None, extra: dict | None = None) -> None:
    """Save weights (optionally cast, e.g. to float16 for shipping) and config (and `extra` info)."""
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(model.config.to_dict())}
    if extra:
        metadata["sgbench_extra"] = json.dumps(extra)
    atomic_save_safetensors(state, Path(path), metadata)


def read_weights(path: str | Path, *, what: str, rebuild: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file that is not a model (the shipped classifiers), as float32 (they are
    stored in float16). A missing or unreadable file is one line naming `what` and how to `rebuild` it."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Expected the {what} at {path} but the file is missing; rebuild it with {rebuild}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise SgbenchError(f"Expected a safetensors file at {path} but it could not be read: {e}") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def read_record(path: str | Path, key: str) -> dict:
    """A JSON record stored under `key` in a safetensors file's metadata (a training record), or {}."""
    return json.loads(read_metadata(path).get(key, "{}"))


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Checkpoint not found: {path} (expected a .safetensors file written by sgbench)")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise SgbenchError(f"Checkpoint {path} is not a readable safetensors file (truncated or corrupt?): {e}") from None


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; a truncated or corrupt file is one line (as `read_metadata`)."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise SgbenchError(f"Checkpoint {path} is not a readable safetensors file (truncated or corrupt?): {e}") from None


def read_config(path: str | Path) -> ModelConfig:
    """The model config stored in the file, without reading its weights."""
    meta = read_metadata(path)
    if CONFIG_KEY not in meta:
        raise SgbenchError(f"Checkpoint {path} has no sgbench model config in its metadata; was it written by sgbench?")
    return ModelConfig.from_dict(json.loads(meta[CONFIG_KEY]))


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> SiT:
    """Rebuild the model from the config stored in the file and load its weights (as float32)."""
    path = Path(path)
    config = read_config(path)
    state = read_tensors(path)
    model = SiT(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"shape of {k}: config needs {tuple(expected[k].shape)}, file has {tuple(state[k].shape)}")
        raise SgbenchError(f"Checkpoint {path}: weights do not match its config ({'; '.join(parts)})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval()


def load_extra(path: str | Path) -> dict:
    """The `extra` dict saved with the model (training step, recipe name...), or {}."""
    meta = read_metadata(path)
    return json.loads(meta.get("sgbench_extra", "{}"))


def export_model(source: str | Path, dest: str | Path, *, half: bool = False) -> int:
    """Copy a trained model for shipping: weights (float16 with `half`) with its config and provenance;
    returns the size of the written file in bytes."""
    check_destination(dest)  # before reading the model
    extra = {**load_extra(source), "exported_from": str(source)}
    save_model(load_model(source), dest, dtype=torch.float16 if half else None, extra=extra)
    return Path(dest).stat().st_size

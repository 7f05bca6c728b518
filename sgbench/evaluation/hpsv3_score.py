"""HPSv3 (Ma et al., ICCV 2025): human preference score of text-to-image samples, through the
`hpsv3` package (the optional extra: pip install 'sgbench[hpsv3]').

HPSv3 is Qwen2-VL-7B-Instruct with a reward head; for each (image, prompt) it predicts a score mu
and its uncertainty sigma (logit columns 0 and 1). Its benchmark (evaluate/benchmark.py of the
hpsv3 repository, `calculate_category_stats`) reports the mean mu per prompt category and, as the
overall score, the unweighted mean of the category means; prompts without categories form one.

Local files only: the package names the base model by hub id in its YAML config and downloads
its checkpoint when given none. We pass a checkpoint file (HPSv3.safetensors, the full reward
model: its strict load replaces every base weight) and write a copy of the package's own config
that points at a local Qwen2-VL-7B-Instruct directory (which supplies the architecture, tokenizer,
image processor and chat template), with the hub switched off while it loads.

Device: HPSv3's release runs in bfloat16 on CUDA. Its reward head runs under a CUDA-only
autocast, so bfloat16 hidden states fail to enter the float32 head on a CPU: there the whole
model runs in float32 instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import sha256_file
from sgbench.evaluation.npz import open_images
from sgbench.utils.progress import track

EXTRA_HINT = "pip install 'sgbench[hpsv3]'"
CHECKPOINT_HINT = "HPSv3.safetensors from https://huggingface.co/MizzenAI/HPSv3"
BASE_MODEL_HINT = "huggingface-cli download Qwen/Qwen2-VL-7B-Instruct --local-dir DIR"
BASE_MODEL_FILES = ("config.json", "preprocessor_config.json", "tokenizer_config.json", "chat_template.json")
PACKAGED_CONFIG = "config/HPSv3_7B.yaml"  # inside the hpsv3 package
DTYPES = {"cuda": "bfloat16", "cpu": "float32"}  # see the module docstring
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class HPSv3Scores:
    """Per-image HPSv3 outputs and the benchmark's statistics of them."""

    mu: np.ndarray                          # (N,) float64, the score (logit column 0)
    sigma: np.ndarray                       # (N,) float64, its uncertainty (logit column 1)
    categories: tuple[str, ...] | None      # (N,) the prompt category of each image, if any
    category_means: dict[str, float]        # mean mu per category, in order of first appearance
    overall: float                          # unweighted mean of category_means (of mu without categories)
    weights_sha256: str                     # of the checkpoint file


# ---------------------------------------------------------------------------- the benchmark's statistics


def benchmark_means(mu: np.ndarray, categories: list[str] | tuple[str, ...] | None) -> tuple[dict[str, float], float]:
    """(mean mu per category, overall) as HPSv3's benchmark computes them: the overall score is the
    unweighted mean of the category means, so each category counts once whatever its size."""
    mu = np.asarray(mu, dtype=np.float64)
    if categories is None:
        return {}, float(mu.mean())
    labels = np.asarray(categories)
    means = {c: float(mu[labels == c].mean()) for c in dict.fromkeys(categories)}
    return means, float(np.mean(list(means.values())))


def metric_records(scores: HPSv3Scores) -> list[dict]:
    """metrics.json records: `hpsv3` (the overall score) and `hpsv3/<category>` per category."""
    counts = {c: scores.categories.count(c) for c in scores.category_means} if scores.categories else {}
    common = {"extractor": "hpsv3", "weights_sha256": scores.weights_sha256}
    records = [{"metric": "hpsv3", "value": scores.overall, **common, "num_samples": len(scores.mu)}]
    for category, mean in scores.category_means.items():
        records.append({"metric": f"hpsv3/{category}", "value": mean, **common, "num_samples": counts[category]})
    return records


# ---------------------------------------------------------------------------- prompts


def read_prompts(path: str | Path) -> tuple[list[str], list[str] | None]:
    """(prompts, categories or None) from a prompts file, one line per sample in order: a .jsonl of
    objects with a "prompt" and, on every line or on none, a "category"; any other file is plain
    text, one prompt per line."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Expected a prompts file (.jsonl or one prompt per line) but {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix != ".jsonl":
        return lines, None
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise SgbenchError(f"Expected one JSON object per line of {path} but line {number} is not JSON: {line[:80]!r}") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise SgbenchError(f"Expected a \"prompt\" string on line {number} of {path} but got {line[:80]!r}")
        rows.append(row)
    with_category = [isinstance(row.get("category"), str) for row in rows]
    if any(with_category) and not all(with_category):
        number = with_category.index(False) + 1
        raise SgbenchError(f"Expected a \"category\" string on every line of {path} or on none but line {number} has none")
    return [row["prompt"] for row in rows], [row["category"] for row in rows] if any(with_category) else None


# ---------------------------------------------------------------------------- local files


def check_checkpoint(checkpoint: str | Path) -> Path:
    """The HPSv3 reward model file: a .safetensors whose tensors include the reward head (rm_head.*)."""
    path = Path(checkpoint)
    if path.suffix != ".safetensors" or not path.is_file():
        raise SgbenchError(
            f"Expected the HPSv3 checkpoint ({CHECKPOINT_HINT}) at --checkpoint FILE but got {path} (no such .safetensors file)")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as f:  # reads the header only
            keys = list(f.keys())
    except (SafetensorError, OSError) as e:
        raise SgbenchError(f"Expected the HPSv3 checkpoint ({CHECKPOINT_HINT}) in {path} but it is not a safetensors file: {e}") from None
    if not any(k.startswith("rm_head.") for k in keys):
        raise SgbenchError(f"Expected the HPSv3 reward model ({CHECKPOINT_HINT}) in {path} but it has no reward head (rm_head.*) tensors")
    return path


def check_base_model(base_model: str | Path) -> Path:
    """A local Qwen2-VL-7B-Instruct directory with what hpsv3 loads from it."""
    path = Path(base_model)
    if not path.is_dir():
        raise SgbenchError(
            f"Expected the Qwen2-VL-7B-Instruct directory at --base-model DIR (get it with `{BASE_MODEL_HINT}`) but {path} is not a directory")
    missing = [name for name in BASE_MODEL_FILES if not (path / name).is_file()]
    if not any(path.glob("*.safetensors")):
        missing.append("*.safetensors")
    if missing:
        raise SgbenchError(f"Expected Qwen2-VL-7B-Instruct in {path} (get it with `{BASE_MODEL_HINT}`) but it lacks {', '.join(missing)}")
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError):
        model_type = None
    if model_type != "qwen2_vl":
        raise SgbenchError(
            f"Expected Qwen2-VL-7B-Instruct (config.json with model_type qwen2_vl) in {path} but its model_type is {model_type!r}")
    return path


def check_device(device: str) -> torch.device:
    """cpu or cuda[:N], available here."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in DTYPES:
        raise SgbenchError(f"Expected --device cpu, cuda or cuda:N but got '{device}'")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise SgbenchError(f"Expected a CUDA GPU for --device {device} but torch sees none; pass --device cpu (float32, far slower)")
    return parsed


# ---------------------------------------------------------------------------- the hpsv3 package


def _import_hpsv3():
    try:
        import hpsv3
    except ImportError as e:
        raise SgbenchError(f"HPSv3 scoring needs the hpsv3 extra but importing it failed ({e}): {EXTRA_HINT}") from None
    return hpsv3


@contextlib.contextmanager
def _hub_offline():
    """The local paths keep hpsv3 off the hub; the variables make any slip fail instead of download."""
    saved = {name: os.environ.get(name) for name in OFFLINE_ENV}
    os.environ.update({name: "1" for name in OFFLINE_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _write_config(hpsv3, base_model: Path, dtype: str, out: Path) -> Path:
    """The package's own HPSv3_7B.yaml with the base model and the precision replaced."""
    config = yaml.safe_load((Path(hpsv3.__file__).parent / PACKAGED_CONFIG).read_text())
    config.update(model_name_or_path=str(base_model.resolve()), torch_dtype=dtype, bf16=dtype == "bfloat16")
    path = out / "HPSv3_local.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def load_inferencer(checkpoint: Path, base_model: Path, device: torch.device):
    """hpsv3.HPSv3RewardInferencer on `device`, from local files only (checked by the caller)."""
    # hpsv3 prints a note on flash-attn to stdout: keep stdout for our own output
    with tempfile.TemporaryDirectory() as tmp, _hub_offline(), contextlib.redirect_stdout(sys.stderr):
        hpsv3 = _import_hpsv3()  # imported here: transformers reads the offline variables at import
        config = _write_config(hpsv3, base_model, DTYPES[device.type], Path(tmp))
        try:
            return hpsv3.HPSv3RewardInferencer(str(config), str(checkpoint), device=str(device))
        except (OSError, ValueError, RuntimeError) as e:
            raise SgbenchError(
                f"Expected HPSv3 to load {checkpoint} onto the Qwen2-VL-7B-Instruct in {base_model} but it failed: {_one_line(e)}"
            ) from None


# ---------------------------------------------------------------------------- scoring


def hpsv3_scores(
    samples: str | Path,                        # npz with `arr_0` uint8 NHWC
    prompts: list[str],                         # one per sample, in order
    *,
    checkpoint: str | Path,                     # HPSv3.safetensors
    base_model: str | Path,                     # local Qwen2-VL-7B-Instruct directory
    categories: list[str] | None = None,        # one per sample: the benchmark's per-category means
    device: str = "cuda",                       # cpu, cuda or cuda:N
    batch_size: int = 16,                       # images per reward call (the benchmark's default)
) -> HPSv3Scores:
    """HPSv3 score of every sample against its prompt, and the benchmark's per-category and overall means."""
    images = open_images(samples)
    if len(prompts) != images.num_images:
        raise SgbenchError(f"Expected one prompt per sample ({images.num_images}) but got {len(prompts)}")
    if categories is not None and len(categories) != images.num_images:
        raise SgbenchError(f"Expected one category per sample ({images.num_images}) but got {len(categories)}")
    if batch_size < 1:
        raise SgbenchError(f"Expected a batch size >= 1 but got {batch_size}")
    target = check_device(device)
    checkpoint, base_model = check_checkpoint(checkpoint), check_base_model(base_model)
    inferencer = load_inferencer(checkpoint, base_model, target)

    from PIL import Image

    logits, start = [], 0
    with torch.no_grad():
        for batch in track(images.batches(batch_size), total=-(-images.num_images // batch_size), description="HPSv3"):
            # PIL images take the same path through hpsv3 as the benchmark's PNG files (lossless)
            pil = [Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x).convert("RGB") for x in batch]
            out = inferencer.reward(pil, prompts[start : start + len(batch)])
            assert out.shape == (len(batch), 2), out.shape
            logits.append(out.float().cpu().numpy().astype(np.float64))
            start += len(batch)
    logits = np.concatenate(logits)
    category_means, overall = benchmark_means(logits[:, 0], categories)
    return HPSv3Scores(
        mu=logits[:, 0], sigma=logits[:, 1], categories=tuple(categories) if categories is not None else None,
        category_means=category_means, overall=overall, weights_sha256=sha256_file(checkpoint),
    )

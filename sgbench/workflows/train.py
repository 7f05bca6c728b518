"""Training: flow matching for dense, routed (TREAD) and masked (MaskDiT) backbones, class- or text-conditional.

    sgbench train recipes/animal/routed.yaml                       # one process
    torchrun --nproc_per_node 2 -m sgbench.cli train RECIPE.yaml   # DDP (gloo on CPU, nccl on GPU)

Everything random in step s is drawn per sample from seeds (recipe seed, step, global sample index),
and the data order is a per-epoch permutation seeded by (seed, epoch). So a step's batch does not
depend on the number of processes or on where a run was resumed: N steps straight and N/2 + kill +
resume N/2 give identical weights, and 1 or 2 processes with the same global batch give the same
result up to float summation order.

Text-to-image (data.dataset animal_scenes, a model with a text encoder): global sample k of the run
is the scene `training_scene(seed, k)`, rendered when needed (no epochs, nothing stored), so the
same holds. A caption is replaced by the empty prompt (the null condition) with probability
train.class_dropout. The text encoder runs inside the step: the embedded one is trained jointly,
the open_clip one's frozen tower is cached per caption and only its trainable layers learn.

Outputs in the recipe's `out` directory:
    checkpoint.safetensors      model, EMA, AdamW state and step (written atomically; --resume reads it)
    model.safetensors           EMA weights + model config (what `sgbench sample` loads)
    snapshots/ema-step{N}.safetensors   EMA weights at chosen steps (autoguidance guides)
    grid-step{N}.png, train_log.jsonl, recipe.yaml, probe.png (text models with train.probe_every)
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
import yaml

from sgbench.utils import distributed

from sgbench.core import seeding
from sgbench.workflows.recipes import TrainRecipe, TrainSection, recipe_to_dict
from sgbench.utils.errors import SgbenchError
from sgbench.core.flow import flow_matching_loss, masked_flow_matching_loss
from sgbench.models.checkpoint import atomic_save_safetensors, load_model, save_model
from sgbench.models.sit import ModelConfig, SiT
from sgbench.utils.files import atomic_write_text
from sgbench.utils.progress import Bar
from sgbench.utils.resources import resolve

# ----------------------------------------------------------------------------------------------------
# Data


def load_training_data(recipe: TrainRecipe) -> tuple[torch.Tensor, torch.Tensor]:
    """All training images (N, C, H, W) float32 in model space, and labels (N,) long."""
    d = recipe.data
    if d.dataset == "animal_mnist":
        from sgbench.data.animal import load_animal_mnist, to_model_space

        images, labels = load_animal_mnist(d.split)
        return to_model_space(images), torch.from_numpy(labels).long()
    if d.dataset == "latents":
        if d.path and Path(d.path).is_dir():  # the shards of `sgbench data encode`
            from sgbench.data.encode import read_latent_shards

            latents, labels, _ = read_latent_shards(d.path)
            return latents, labels
        if not d.path or not Path(d.path).is_file():
            raise SgbenchError(
                f"data.dataset 'latents' needs data.path: a directory written by `sgbench data encode`, or an npz "
                f"with 'latents' (N, C, H, W) and 'labels' (N,); got {d.path}"
            )
        with np.load(d.path) as f:
            if "latents" not in f or "labels" not in f:
                raise SgbenchError(f"{d.path}: expected keys 'latents' and 'labels' but found {sorted(f.files)}")
            return torch.from_numpy(f["latents"]).float(), torch.from_numpy(f["labels"]).long()
    raise SgbenchError(f"Unknown data.dataset '{d.dataset}'; expected 'animal_mnist', 'latents' or 'animal_scenes'")


def held_out_captions(hold_out: str | None) -> frozenset[str]:
    """Captions never trained on: 'geneval' holds out the embedded GenEval prompts."""
    if hold_out is None:
        return frozenset()
    if hold_out == "geneval":
        from sgbench.evaluation.geneval.prompts import held_out_prompts

        return frozenset(held_out_prompts())
    raise SgbenchError(f"Unknown data.hold_out '{hold_out}'; expected geneval (or leave it unset)")


def scene_batch(
    recipe: TrainRecipe, positions, held_out: frozenset[str], pool: Executor | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Scenes at global sample positions: images (B, 3, H, W) in [-1, 1] and their captions.

    `pool` (data.workers processes) renders them in parallel; a scene is a pure function of its
    position, so the batch is the same with or without it.
    """
    from sgbench.data.scenes import training_scene

    d = recipe.data
    render = partial(training_scene, recipe.train.seed, canvas=d.canvas, sprite=d.sprite, held_out=held_out, objects=d.objects,
                     layout=d.layout, family_weights=d.caption_families)
    positions = [int(k) for k in positions]
    if pool is None:
        scenes = [render(k) for k in positions]
    else:
        # One chunk per worker: `render` (with the held-out captions) is pickled once per chunk, not per scene.
        scenes = list(pool.map(render, positions, chunksize=-(-len(positions) // recipe.data.workers)))
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float()
    return images / 127.5 - 1.0, [s.caption for s in scenes]


def check_data_fits(recipe: TrainRecipe, config) -> None:
    """Text data for text models, class data for class models, and scenes of the model's size."""
    text_data = recipe.data.dataset == "animal_scenes"
    if text_data != (config.text is not None):
        raise SgbenchError(
            f"data.dataset '{recipe.data.dataset}' needs a {'text' if text_data else 'class-conditional'} model "
            f"(model.text {'set' if text_data else 'unset'}) but the recipe's model is "
            f"{'a text model' if config.text is not None else 'class-conditional'}"
        )
    if text_data and (config.in_channels, config.input_size) != (3, recipe.data.canvas):
        raise SgbenchError(
            f"Scenes of {recipe.data.canvas}x{recipe.data.canvas}x3 do not fit the model's input "
            f"{config.input_size}x{config.input_size}x{config.in_channels}"
        )


def data_vae(recipe: TrainRecipe) -> dict | None:
    """The VAE that encoded the training latents (identity and source, from the manifest of `sgbench data
    encode`), recorded in the trained model so that `sgbench sample` decodes it without --vae; or None."""
    d = recipe.data
    manifest = Path(d.path or "") / "manifest.json"
    if d.dataset != "latents" or not manifest.is_file():
        return None
    from sgbench.utils.files import read_json

    m = read_json(manifest)
    return {**m["vae"], "source": m["vae_source"]} if "vae_source" in m else None


def batch_indices(seed: int, step: int, batch_size: int, num_items: int) -> np.ndarray:
    """Dataset indices of global batch `step`: consecutive slices of per-epoch permutations."""
    epochs, within = np.divmod(np.arange(step * batch_size, (step + 1) * batch_size), num_items)
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng(seeding.derive_seed(seed, seeding.TRAIN, int(epoch))).permutation(num_items)
        out[epochs == epoch] = perm[within[epochs == epoch]]
    return out


# ----------------------------------------------------------------------------------------------------
# Checkpoints (safetensors; the AdamW state flattened into named tensors)


def save_checkpoint(path: Path, step: int, model: SiT, ema: SiT, opt: torch.optim.Optimizer, recipe: TrainRecipe) -> None:
    tensors = {f"model.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu() for k, v in ema.state_dict().items()})
    for i, p in enumerate(model.parameters()):
        state = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq", "step"):
            if name in state:
                tensors[f"opt.{i}.{name}"] = torch.as_tensor(state[name]).detach().cpu().reshape(-1) if name == "step" else state[name].detach().cpu()
    meta = {"step": str(step), "recipe": json.dumps(recipe_to_dict(recipe)), "model_config": json.dumps(model.config.to_dict())}
    atomic_save_safetensors(tensors, path, meta)


def load_checkpoint(path: Path, model: SiT, ema: SiT, opt: torch.optim.Optimizer) -> int:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for truncated files
        raise SgbenchError(f"Cannot resume: {path} is not a readable checkpoint ({e})") from None
    if ModelConfig.from_dict(json.loads(meta["model_config"])) != model.config:  # fields added since compare at their defaults
        raise SgbenchError(f"Cannot resume: {path} was written for another model config than this recipe's")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    for i, p in enumerate(model.parameters()):
        if f"opt.{i}.exp_avg" in tensors:
            opt.state[p] = {
                "step": tensors[f"opt.{i}.step"].reshape(()).clone(),
                "exp_avg": tensors[f"opt.{i}.exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"].to(p.device),
            }
    return int(meta["step"])


def load_initial_weights(path: str, model: SiT, ema: SiT) -> None:
    """`train.init_from`: model and EMA start from a model file whose config is the recipe's model."""
    source = resolve(path)
    start = load_model(source)  # one read of the file: its config and its weights
    if start.config != model.config:
        ours = model.config.to_dict()
        differ = sorted(k for k, v in start.config.to_dict().items() if ours.get(k) != v)
        raise SgbenchError(
            f"train.init_from: {source} holds a model of another config than this recipe's "
            f"(differs in {', '.join(differ) or 'defaults'}); fine-tuning needs the same architecture"
        )
    model.load_state_dict(start.state_dict())
    ema.load_state_dict(start.state_dict())


# ----------------------------------------------------------------------------------------------------
# The loop


def training_time(t_cfg: TrainSection, generator: torch.Generator) -> torch.Tensor:
    """One sample's t (0 noise, 1 data) from its own generator, as train.time_sampling says."""
    if t_cfg.time_sampling == "logit_normal":
        return torch.sigmoid(t_cfg.time_mean + t_cfg.time_std * torch.randn((), generator=generator))
    return torch.rand((), generator=generator)


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The decay used for the EMA update after `step` optimiser steps (0-based)."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


@torch.no_grad()
def update_ema(ema: SiT, model: SiT, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - decay)


def train(
    recipe: TrainRecipe,
    *,
    resume: bool = False,
    device: str = "cpu",
    stop_after: int | None = None,  # stop (as if killed) after this many steps; for tests and time boxes
    progress: bool = True,
) -> Path:
    """Train `recipe`; returns the output directory. Resumable, DDP-aware (launch with torchrun)."""
    dev = distributed.local_device(distributed.parse_device(device))
    rank, world = distributed.init(dev)
    t_cfg = recipe.train
    if t_cfg.batch_size % world:
        raise SgbenchError(f"train.batch_size {t_cfg.batch_size} must be divisible by the number of processes {world}")
    out = Path(recipe.out)
    ckpt_path = out / "checkpoint.safetensors"
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SgbenchError(f"Cannot write the training output folder {out}: {e.strerror or e}") from None
        if ckpt_path.exists() and not resume:
            raise SgbenchError(f"{ckpt_path} exists: pass --resume to continue it, or choose another out directory")
        atomic_write_text(out / "recipe.yaml", yaml.safe_dump(json.loads(json.dumps(recipe_to_dict(recipe))), sort_keys=False))

    config = recipe.model.build()
    torch.manual_seed(t_cfg.seed)  # initial weights
    model = SiT(config).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=t_cfg.lr, betas=tuple(t_cfg.betas), weight_decay=t_cfg.weight_decay)
    step = 0
    if resume:
        if not ckpt_path.exists():
            raise SgbenchError(f"--resume: no checkpoint at {ckpt_path}")
        step = load_checkpoint(ckpt_path, model, ema, opt)
    elif t_cfg.init_from:
        load_initial_weights(t_cfg.init_from, model, ema)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    check_data_fits(recipe, config)
    text_model = config.text is not None
    pool = None
    if text_model:
        held_out = held_out_captions(recipe.data.hold_out)
        if recipe.data.workers:  # spawn, not fork: a forked child of a process running torch threads can hang
            pool = ProcessPoolExecutor(recipe.data.workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        images, labels = load_training_data(recipe)
        if tuple(images.shape[1:]) != (config.in_channels, config.input_size, config.input_size):
            raise SgbenchError(
                f"Data of shape {tuple(images.shape[1:])} does not fit the model's input "
                f"{(config.in_channels, config.input_size, config.input_size)}"
            )
        if int(labels.max()) >= config.num_classes:
            raise SgbenchError(f"The data has labels up to {int(labels.max())} but the model has {config.num_classes} classes")
    per_rank = t_cfg.batch_size // world
    extra = {"recipe": recipe.name}
    vae = data_vae(recipe)
    if vae is not None:
        extra["vae"] = vae
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if t_cfg.precision == "bf16" else nullcontext()
    log = open(out / "train_log.jsonl", "a") if rank == 0 else None
    last_step = t_cfg.steps if stop_after is None else min(t_cfg.steps, step + stop_after)
    bar = Bar(f"train {recipe.name}", total=t_cfg.steps, completed=step, enabled=progress and rank == 0)
    t0, seen = time.time(), 0
    while step < last_step:
        gidx = range(rank * per_rank, (rank + 1) * per_rank)  # global sample positions within the batch
        gens = [seeding.generator(t_cfg.seed, seeding.TRAIN, step, j) for j in gidx]
        if text_model:
            x, captions = scene_batch(recipe, [step * t_cfg.batch_size + j for j in gidx], held_out, pool)
            x = x.to(dev)
        else:
            idx = batch_indices(t_cfg.seed, step, t_cfg.batch_size, len(images))[rank * per_rank : (rank + 1) * per_rank]
            x, y = images[idx].to(dev), labels[idx].to(dev)
        z = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).to(dev)
        t = torch.stack([training_time(t_cfg, g) for g in gens]).to(dev)
        drop = torch.stack([torch.rand((), generator=g) for g in gens]).to(dev) < t_cfg.class_dropout
        if not text_model:
            y = torch.where(drop, torch.full_like(y, config.num_classes), y)
        lr = t_cfg.lr * min(1.0, (step + 1) / t_cfg.warmup_steps) if t_cfg.warmup_steps else t_cfg.lr
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast:
            if text_model:  # the encoder runs (and, embedded, learns) in every step; "" is the null prompt
                y = model.encode_text(["" if d else c for c, d in zip(captions, drop.tolist())])
            if config.masking is not None:
                loss = masked_flow_matching_loss(net, x, y, z, t, mae_weight=t_cfg.mae_weight, generators=gens)
            else:
                loss = flow_matching_loss(net, x, y, z, t, sparsity=None, generators=gens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        update_ema(ema, model, ema_decay_at(step, t_cfg.ema_decay, t_cfg.ema_warmup))
        step += 1
        seen += t_cfg.batch_size
        loss_value = distributed.mean_over_processes(loss.detach())
        if rank == 0:
            ips = seen / max(time.time() - t0, 1e-9)
            bar.update(completed=step, info=f"loss {loss_value:.4f}  {ips:.0f} img/s")
            if step % t_cfg.log_every == 0 or step == last_step:
                log.write(json.dumps({"step": step, "loss": loss_value, "lr": lr, "images_per_s": ips, "time": time.time()}) + "\n")
                log.flush()
            if step in t_cfg.snapshots:
                save_model(ema, out / "snapshots" / f"ema-step{step}.safetensors", extra={"step": step, **extra})
            if t_cfg.sample_every and step % t_cfg.sample_every == 0:
                _write_grid(ema, out / f"grid-step{step}.png")
            if text_model and t_cfg.probe_every and step % t_cfg.probe_every == 0:
                from sgbench.evaluation.probe import attribute_probe

                probe = attribute_probe(ema, scenes=t_cfg.probe_scenes, canvas=recipe.data.canvas, sprite=recipe.data.sprite,
                                       objects=recipe.data.objects, layout=recipe.data.layout)
                log.write(json.dumps({"step": step, "probe": probe}) + "\n")
                log.flush()
                from sgbench.results.plots import plot_probe_curve

                plot_probe_curve(out / "train_log.jsonl", out / "probe.png")
            if step % t_cfg.ckpt_every == 0 or step == last_step:
                save_checkpoint(ckpt_path, step, model, ema, opt, recipe)
        distributed.barrier()
    bar.close()
    if pool is not None:
        pool.shutdown()
    if rank == 0 and step == t_cfg.steps:
        save_model(ema, out / "model.safetensors", extra={"step": step, **extra})
        _write_grid(ema, out / f"grid-step{step}.png")
    if log is not None:
        log.close()
    return out


def _write_grid(model: SiT, path: Path) -> None:
    """An unguided 10-step preview grid: one row per class (at most 10 classes, 8 samples each), or
    for a text model one row per preview prompt, labelled with it."""
    if model.config.text is not None:
        from sgbench.sampling.previews import text_preview_grid

        text_preview_grid(model, path)
        return
    from sgbench.sampling.previews import class_preview_grid

    class_preview_grid(model, path)

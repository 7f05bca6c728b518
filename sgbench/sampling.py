"""Sampling: solvers, per-sample seeding, and the sampling loop that fills a run directory.

The ODE dx/dt = v(x, t) is integrated from t = 0 (noise) to t = 1 (data) (docs/design.md, "Time and
flow"). A solver only sees `velocity(x, t, eval_index)`; guidance methods plug in there. Sample i's
noise, label and token selections are drawn from seeds (run seed, i, ...), so a run's samples do not
depend on batch size, on the number of processes (torchrun: batch k goes to process k mod world), or
on where it was resumed: finished batches are kept as shards, and a rerun with the same --out skips
them. The files of a run are sgbench.rundir's business.

Latent models (4 channels, as in SD-VAE latents) are decoded by their VAE (sgbench.vae) shard by shard,
so a run holds uint8 images exactly as a pixel model's; the VAE's identity is part of the run's
identity and of run.json. `precision="bf16"` runs the model forwards under bfloat16 autocast.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from sgbench import __version__, distributed, seeding
from sgbench.errors import SgbenchError
from sgbench.files import cached_sha256
from sgbench.models.sit import ModelConfig, SiT
from sgbench.progress import Bar
from sgbench.rundir import RUN_FORMAT, RunDir, RunInfo, as_json, now

# ----------------------------------------------------------------------------------------------------
# Solvers: Euler (default) and Heun, on the uniform grid t_k = k / steps.

VelocityFn = Callable[[torch.Tensor, float, int], torch.Tensor]  # (x, t, eval_index) -> v
SOLVERS = ("euler", "heun")


def eval_times(steps: int, solver: str) -> list[float]:
    """The times at which the solver evaluates the velocity (what the FLOPs count sums over)."""
    check_solver(solver, steps)
    ts = [k / steps for k in range(steps)]
    if solver == "euler":
        return ts
    # Heun: a corrector at t_{k+1} for every step but the last (t = 1 is never evaluated, as in EDM).
    out = []
    for k in range(steps):
        out.append(ts[k])
        if k < steps - 1:
            out.append((k + 1) / steps)
    return out


def check_solver(solver: str, steps: int) -> None:
    if solver not in SOLVERS:
        raise SgbenchError(f"Unknown solver '{solver}'; expected one of {', '.join(SOLVERS)}")
    if steps < 1:
        raise SgbenchError(f"Expected --steps >= 1 but got {steps}")


def integrate(velocity: VelocityFn, z: torch.Tensor, *, steps: int = 40, solver: str = "euler") -> torch.Tensor:
    """Integrate from noise z at t = 0 to t = 1. Evaluation indices count 0, 1, ... in time order."""
    check_solver(solver, steps)
    x, n = z, 0
    for k in range(steps):
        t, t_next = k / steps, (k + 1) / steps
        v = velocity(x, t, n)
        n += 1
        if solver == "heun" and k < steps - 1:
            x_pred = x + (t_next - t) * v
            v_next = velocity(x_pred, t_next, n)
            n += 1
            x = x + (t_next - t) * 0.5 * (v + v_next)
        else:
            x = x + (t_next - t) * v
    return x


# ----------------------------------------------------------------------------------------------------
# Decoding model outputs to images


def decode_pixels(x: torch.Tensor) -> np.ndarray:
    """Pixel-space models: [-1, 1] NCHW -> uint8 NHWC. (Latent models go through their VAE.)"""
    x = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


# Latents per VAE decoder forward: one. Convolution libraries choose their algorithm by the batch too, so
# a decoder fed whole shards would tie a sample's pixels to the shard size (docs/design.md, "Numerics");
# one latent at a time is the same computation for every sample, at a small cost next to sampling.
DECODE_BATCH = 1


def is_latent(config: ModelConfig) -> bool:
    """Pixel models see 1 or 3 channels; anything else (SD-VAE: 4) is a latent model."""
    return config.in_channels not in (1, 3)


def make_decoder(model_config: ModelConfig, vae_source: str | None, device: torch.device) -> Callable[[torch.Tensor], np.ndarray]:
    """Model outputs (B, C, H, W) at t = 1 -> uint8 images (B, H', W', 3 or C)."""
    if not is_latent(model_config):
        return decode_pixels
    from sgbench.vae import load_vae

    assert vae_source is not None, "resolve_decoder refuses a latent model without a VAE"
    vae = load_vae(vae_source, device=device)  # float32 whatever the sampling precision, as DiT decodes
    return lambda x: vae.decode(x, batch_size=DECODE_BATCH)


class Bf16Forwards:
    """A model whose forwards run under bfloat16 autocast and hand back float32 velocities: only the
    network's matmuls and convolutions lose precision, the guidance combination and the solver do not."""

    def __init__(self, model: SiT, device: torch.device):
        self.model, self.device_type = model, device.type
        self.config, self.null_class = model.config, model.null_class

    def prefix(self, x, t, y):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model.prefix(x, t, y)

    def suffix(self, prefix, *, sparsity, generators=None):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model.suffix(prefix, sparsity=sparsity, generators=generators).float()


# ----------------------------------------------------------------------------------------------------
# Run configuration


@dataclass(frozen=True)
class SampleConfig:
    checkpoint: str
    out: str
    guidance: str = "unguided"
    guidance_params: dict = field(default_factory=dict)  # exactly what the user set
    guide: str | None = None  # guide checkpoint for ag / ag+sg
    num: int = 64
    batch_size: int = 64
    steps: int = 40
    solver: str = "euler"
    seed: int = 0
    labels: str = "balanced"  # or "random"
    device: str = "cpu"
    vae: str | None = None  # latent models: VAE directory or HF cache name; None: the one the checkpoint records
    precision: str = "fp32"  # or "bf16": model forwards under bfloat16 autocast (CUDA; CPUs with bf16 matmuls)
    prompts: str | None = None  # text models: a prompts file (GenEval's evaluation_metadata.jsonl, or one per line)
    images_per_prompt: int = 1  # text models: sample i shows prompt i // images_per_prompt

    def identity(self) -> dict:
        """What determines the samples, as JSON: a resumed run must match it (batch size, device and
        output folder don't). The weights' hashes belong to it: a checkpoint retrained in place must not
        resume (or let `sgbench bench` reuse) samples of the old weights; so does the VAE's identity (not
        its path), so samples decoded by another VAE never resume a run. Pixel fp32 runs keep the
        identity they had before latent decoding and precision existed."""
        d = asdict(self)
        for k in ("batch_size", "device", "out", "vae", "precision", "prompts", "images_per_prompt"):
            d.pop(k)
        d["guidance_params"] = self.method().params  # canonical: typed, defaults filled, however spelled
        if self.precision != "fp32":
            d["precision"] = self.precision
        if self.prompts is not None:  # text runs: the prompts' content, not the file's path
            d.pop("labels")
            d["prompts_sha256"] = cached_sha256(self.prompts)
            d["images_per_prompt"] = self.images_per_prompt
        decoder = resolve_decoder(self)
        if decoder is not None:
            d["decoder"] = {k: v for k, v in decoder.items() if k != "source"}
        d["checkpoint_sha256"] = cached_sha256(self.checkpoint)
        d["guide_sha256"] = cached_sha256(self.guide) if self.guide else None
        d["run_format"] = RUN_FORMAT
        return as_json(d)

    def method(self):
        """The guidance method this run samples with, its parameters parsed and validated."""
        from sgbench.guidance import build_guidance

        return build_guidance(self.guidance, **self.guidance_params)

    def validate(self) -> None:
        """Everything that can be checked without loading a model, before anything is written."""
        from sgbench.guidance import REGISTRY

        if self.prompts is not None and self.images_per_prompt < 1:  # before --num-samples, which the CLI derives from it
            raise SgbenchError(f"Expected --images-per-prompt >= 1 but got {self.images_per_prompt}")
        if self.num < 1 or self.batch_size < 1:
            raise SgbenchError(f"Expected --num-samples >= 1 and --batch-size >= 1 but got {self.num} and {self.batch_size}")
        if self.labels not in LABELS:
            raise SgbenchError(f"Expected --labels {' or '.join(LABELS)} but got '{self.labels}'")
        check_solver(self.solver, self.steps)
        if self.seed < 0:  # seeding.derive_seed hashes it with numpy's SeedSequence: any integer >= 0, no upper bound
            raise SgbenchError(f"Expected --seed >= 0 (any non-negative integer) but got {self.seed}")
        if self.precision not in PRECISIONS:
            raise SgbenchError(f"Expected --precision {' or '.join(PRECISIONS)} but got '{self.precision}'")
        guided_by_a_model = [name for name, cls in REGISTRY.items() if cls.needs_guide]
        if self.guide is not None and self.guidance in REGISTRY and self.guidance not in guided_by_a_model:
            raise SgbenchError(f"--guide is a checkpoint for {' and '.join(guided_by_a_model)}; {self.guidance} runs no guide model: "
                               "drop --guide")
        for path, option in ((self.checkpoint, "--checkpoint"), (self.guide, "--guide")):
            if path is not None and not Path(path).is_file():
                raise SgbenchError(f"Checkpoint not found: {path} ({option}; expected a .safetensors file written by sgbench)")
        distributed.parse_device(self.device)
        resolve_decoder(self)
        if self.prompts is not None:
            available = len(read_prompt_texts(self.prompts)) * self.images_per_prompt
            if self.num > available:
                raise SgbenchError(f"Expected --num-samples <= {available} ({self.images_per_prompt} images for each prompt of "
                                   f"{self.prompts}) but got {self.num}")

    def check_model(self, config) -> None:
        """Text models sample from prompts, class models from labels."""
        if config.text is not None and self.prompts is None:
            raise SgbenchError(f"{self.checkpoint} is a text-to-image model: give it prompts with --prompts FILE")
        if config.text is None and self.prompts is not None:
            raise SgbenchError(f"{self.checkpoint} is class-conditional: it takes no --prompts")


def read_prompt_texts(path: str | Path) -> list[str]:
    """The prompt strings of a prompts file, in order (one-line errors for a bad file)."""
    from sgbench.text.prompts import read_prompts

    return [record["prompt"] for record in read_prompts(path)]


LABELS = ("balanced", "random")
PRECISIONS = ("fp32", "bf16")


def resolve_decoder(config: SampleConfig) -> dict | None:
    """The identity of the VAE that decodes this run's model (sgbench.vae.vae_identity), or None for a
    pixel model: --vae, else the VAE recorded in the checkpoint (`sgbench import --vae`). One line
    naming what to get when a latent model has none."""
    from sgbench.models.checkpoint import load_extra, read_config
    from sgbench.vae import HOW_TO_GET, vae_identity

    model = read_config(config.checkpoint)
    if not is_latent(model):
        if config.vae is not None:
            raise SgbenchError(f"--vae decodes latent models, but {config.checkpoint} is a pixel-space model "
                               f"({model.in_channels} channel(s)): drop --vae")
        return None
    source = config.vae or (load_extra(config.checkpoint).get("vae") or {}).get("source")
    if source is None:
        raise SgbenchError(f"{config.checkpoint} is a latent model ({model.in_channels} channels at {model.input_size}x"
                           f"{model.input_size}) and sampling decodes it with its VAE: {HOW_TO_GET}")
    return vae_identity(source)


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict:
    return {
        "sgbench": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "git_commit": git_commit(),
    }


# ----------------------------------------------------------------------------------------------------
# Generation


def generate(
    models,
    method,
    conditioning,
    indices: Sequence[int],
    *,
    seed: int,
    steps: int,
    solver: str,
    device: torch.device,
) -> torch.Tensor:
    """Samples `indices` under `method` and `conditioning` (class labels or prompts,
    sgbench.conditioning): x at t = 1, (B, C, H, W) float on the CPU. Sample i starts from
    seeding.sample_noise(seed, [i]) whatever its batch."""
    cfg = models.main.config
    z = seeding.sample_noise(seed, indices, (cfg.in_channels, cfg.input_size, cfg.input_size)).to(device)
    state = method.new_state(len(indices))

    def velocity(x, t, n):
        return method.velocity(models, x, t, step=n, indices=indices, seed=seed, state=state, conditioning=conditioning)

    with torch.no_grad():
        x = integrate(velocity, z, steps=steps, solver=solver)
    return x.cpu()


def class_conditioning(config, indices: Sequence[int], labels_mode: str, seed: int, device: torch.device):
    """Class labels of samples `indices`: i mod K (balanced) or drawn per sample."""
    from sgbench.conditioning import ClassConditioning

    labels = seeding.sample_labels(seed, indices, config.num_classes, balanced=labels_mode == "balanced")
    return ClassConditioning(labels.to(device))


def batches_to_run(num: int, done: set[int], batch_size: int) -> list[list[int]]:
    """The samples still to draw, as batches of consecutive indices (each becomes one shard)."""
    out: list[list[int]] = []
    for i in range(num):
        if i in done:
            continue
        if out and out[-1][-1] == i - 1 and len(out[-1]) < batch_size:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def sample_run(config: SampleConfig, *, progress: bool = True) -> Path:
    """Generate `config.num` samples into the run directory `config.out`; resumes if it exists.

    Batch k of the samples still to draw goes to process k mod world (torchrun), so 1 and N processes
    write the same shards; a finished run with this identity is left as it is.
    """
    from sgbench.flops import cost_report
    from sgbench.grid import save_grid, save_labelled_grid
    from sgbench.guidance import Models
    from sgbench.guidance.base import check_guide, check_sparse_backbone
    from sgbench.models.checkpoint import load_model

    config.validate()
    method = config.method()
    run = RunDir(config.out)
    identity = config.identity()
    if run.is_finished(identity):
        return run.path
    device = distributed.local_device(distributed.parse_device(config.device))
    main = load_model(config.checkpoint, device=device)
    guide = load_model(config.guide, device=device) if config.guide else None
    models = Models(main=main, guide=guide)
    if method.needs_guide:
        check_guide(models)  # before any sampling: a missing or mismatched guide fails at once
    times = eval_times(config.steps, config.solver)
    check_sparse_backbone(method, models, times)
    config.check_model(main.config)
    prompt_set = None
    if config.prompts is not None:
        from sgbench.conditioning import PromptSet

        prompt_set = PromptSet(read_prompt_texts(config.prompts))
        for model in filter(None, (main, guide)):  # every prompt encoded once per model, and checked before any write
            prompt_set.encoded(model)
    decoder = resolve_decoder(config)
    decode = make_decoder(main.config, decoder["source"] if decoder else None, device)
    if config.precision == "bf16":
        models = Models(main=Bf16Forwards(main, device), guide=Bf16Forwards(guide, device) if guide else None)

    rank, world = distributed.init(device)
    if rank == 0:
        run.claim(identity)
    distributed.barrier()
    batches = batches_to_run(config.num, run.done_indices(), config.batch_size)
    mine = batches[rank::world]
    todo = sum(len(b) for b in batches)
    t0 = time.time()
    with Bar(f"sample {config.guidance}", total=config.num, completed=config.num - todo, enabled=progress and rank == 0) as bar:
        for batch in mine:
            if prompt_set is None:
                conditioning = class_conditioning(main.config, batch, config.labels, config.seed, device)
                per_sample = {"labels": conditioning.labels.cpu().numpy().astype(np.int64)}
            else:
                from sgbench.text.prompts import prompt_conditioning

                conditioning = prompt_conditioning(prompt_set, batch, config.images_per_prompt)
                per_sample = {"prompt_index": conditioning.prompt_ids.numpy().astype(np.int64)}
            x = generate(models, method, conditioning, batch, seed=config.seed, steps=config.steps, solver=config.solver,
                         device=device)
            run.write_shard(batch, decode(x), **per_sample)
            bar.advance(len(batch) * world)
    elapsed = time.time() - t0
    generated = distributed.sum_over_processes(sum(len(b) for b in mine))
    distributed.barrier()
    if rank == 0:
        run.assemble(config.num)
        if prompt_set is None:
            columns = min(10, main.config.num_classes) if config.labels == "balanced" else 10
            save_grid(run.first_images(min(100, config.num)), run.grid, columns=columns)  # read from the shards, not all N
        else:  # one row per prompt, labelled with it
            k = min(config.images_per_prompt, 8)
            rows = min(config.num // config.images_per_prompt, 12)
            first = run.first_images(rows * config.images_per_prompt)
            pick = [r * config.images_per_prompt + j for r in range(rows) for j in range(k)]
            save_labelled_grid(first[pick], prompt_set.prompts[:rows], run.grid)
        run.write_info(RunInfo(
            config=asdict(config), identity=identity,
            guidance={"name": method.name, "params": method.params},
            model={"checkpoint": config.checkpoint, "sha256": cached_sha256(config.checkpoint), "config": main.config.to_dict()},
            guide={"checkpoint": config.guide, "sha256": cached_sha256(config.guide), "config": guide.config.to_dict()} if guide else None,
            flops=cost_report(method, main.config, times, guide_config=guide.config if guide else None),
            num_samples=config.num, world_size=world, seed=config.seed,
            timing={"generated_this_invocation": int(generated), "wall_time_s": elapsed,
                    "images_per_s": generated / elapsed if elapsed > 0 and generated else None,
                    "device": str(device), "threads": torch.get_num_threads(), "peak_memory_mb": _peak_memory_mb(device)},
            environment=environment_info(), created=now(), decoder=decoder, samples=run.samples_binding(),
            conditioning=None if prompt_set is None else {
                "prompts": config.prompts, "sha256": cached_sha256(config.prompts), "num_prompts": len(prompt_set),
                "images_per_prompt": config.images_per_prompt, "null": "the empty prompt",
                "icg": "another prompt of this file, drawn uniformly per sample and step (seeding stream ICG_LABEL)",
            },
        ))
    distributed.barrier()
    return run.path


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ----------------------------------------------------------------------------------------------------
# Preview grids for training (unguided, few steps)


def preview_grid(model: SiT, path: Path, *, per_class: int = 8, steps: int = 10, seed: int = 0) -> None:
    """Unguided Euler samples of the first 10 classes, one row per class, for training previews."""
    from sgbench.grid import save_grid

    cfg = model.config
    classes = min(cfg.num_classes, 10)
    device = next(model.parameters()).device
    indices = list(range(classes * per_class))
    labels = torch.tensor([i // per_class for i in indices], device=device)
    z = seeding.sample_noise(seed, indices, (cfg.in_channels, cfg.input_size, cfg.input_size)).to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = integrate(lambda x, t, n: model(x, torch.full((x.shape[0],), t, device=device), labels), z, steps=steps)
    model.train(was_training)
    if cfg.in_channels in (1, 3):
        save_grid(decode_pixels(x), Path(path), columns=per_class)

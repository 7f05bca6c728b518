"""Sampling: solvers, per-sample seeding, sharded and resumable writing of run directories.

The ODE dx/dt = v(x, t) is integrated from t = 0 (noise) to t = 1 (data) (DESIGN section 2). A
solver only sees `velocity(x, t, eval_index)`; guidance methods plug in there. Sample i's noise,
label and token selections are drawn from seeds (run seed, i, ...), so a run's samples do not depend
on batch size, on the number of processes (torchrun shards indices i = rank mod world), or on where
it was resumed: finished batches are kept as shard files written atomically, and a rerun with the
same --out skips them.

A run directory (DESIGN section 7):
    run.json      resolved config, versions, git commit, seed, GFLOPs, wall time, images/s, memory
    samples.npz   arr_0 uint8 (N, H, W, C) as the ADM evaluator reads it; labels int64 (N,)
    grid.png      the first samples, one column per class when labels are class-balanced
    shards/       the per-batch pieces samples.npz was assembled from
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from sgbench import __version__, seeding
from sgbench.errors import SgbenchError
from sgbench.metrics.extractor import sha256_file
from sgbench.models.sit import SiT

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
    """Pixel-space models: [-1, 1] NCHW -> uint8 NHWC. (Latent models go through a VAE decoder.)"""
    x = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_decoder(model_config, vae: str | None):
    if model_config.in_channels in (1, 3) and vae is None:
        return decode_pixels
    raise SgbenchError(
        f"This model has {model_config.in_channels} input channels (a latent model): decoding needs an SD-VAE. "
        "Latent decoding is not built into this version; sample pixel-space models, or decode the raw latents yourself."
    )


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
    vae: str | None = None

    def identity(self) -> dict:
        """What determines the samples: a resumed run must match it (batch size and device don't).

        The weights' hashes belong to it: a checkpoint retrained in place must not resume (or let
        `sgbench bench` reuse) samples of the old weights.
        """
        d = asdict(self)
        for k in ("batch_size", "device", "out"):
            d.pop(k)
        d["checkpoint_sha256"] = _cached_sha256(self.checkpoint)
        d["guide_sha256"] = _cached_sha256(self.guide) if self.guide else None
        return d


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _cached_sha256(path: str) -> str | None:
    """sha256 of a file, hashed once per (path, size, mtime); None for a missing file (reported later)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


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
    indices: Sequence[int],
    *,
    seed: int,
    steps: int,
    solver: str,
    labels_mode: str,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples for the given indices: returns (x at t = 1, NCHW float, CPU; labels (B,))."""
    cfg = models.main.config
    shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
    z = seeding.sample_noise(seed, indices, shape).to(device)
    labels = seeding.sample_labels(seed, indices, cfg.num_classes, balanced=labels_mode == "balanced").to(device)
    state = method.new_state(len(indices))

    def velocity(x, t, n):
        return method.velocity(models, x, t, step=n, labels=labels, indices=indices, seed=seed, state=state)

    with torch.no_grad():
        x = integrate(velocity, z, steps=steps, solver=solver)
    return x.cpu(), labels.cpu()


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _atomic_savez(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _done_indices(shard_dir: Path) -> set[int]:
    done: set[int] = set()
    for p in shard_dir.glob("shard-*.npz"):
        with np.load(p) as f:
            done.update(int(i) for i in f["indices"])
    return done


def sample_run(config: SampleConfig, *, progress: bool = True) -> Path:
    """Generate `config.num` samples into the run directory `config.out`; resumes if it exists."""
    from sgbench.flops import cost_report
    from sgbench.guidance import Models, build_guidance
    from sgbench.guidance.base import check_guide, check_sparse_backbone
    from sgbench.models.checkpoint import load_model

    if config.num < 1 or config.batch_size < 1:
        raise SgbenchError(f"Expected --num-samples >= 1 and --batch-size >= 1 but got {config.num} and {config.batch_size}")
    if config.labels not in ("balanced", "random"):
        raise SgbenchError(f"Expected --labels balanced or random but got '{config.labels}'")
    check_solver(config.solver, config.steps)
    device = torch.device(config.device)
    main = load_model(config.checkpoint, device=device)
    guide = load_model(config.guide, device=device) if config.guide else None
    method = build_guidance(config.guidance, **config.guidance_params)
    models = Models(main=main, guide=guide)
    if method.needs_guide:
        check_guide(models)  # before any sampling: a missing or mismatched guide fails at once
    check_sparse_backbone(method, models, eval_times(config.steps, config.solver))
    decode = make_decoder(main.config, config.vae)

    rank, world = _dist()
    out = Path(config.out)
    shard_dir = out / "shards"
    ident_path = out / "sample_config.json"
    if rank == 0:
        shard_dir.mkdir(parents=True, exist_ok=True)
        identity = config.identity()
        if ident_path.exists():
            previous = json.loads(ident_path.read_text())
            if previous != identity:
                changed = sorted(k for k in previous.keys() | identity.keys() if previous.get(k) != identity.get(k))
                raise SgbenchError(
                    f"{out} holds a run with another configuration (differs in: {', '.join(changed)}); "
                    "choose another --out or delete it"
                )
        else:
            _atomic_write_text(ident_path, json.dumps(identity, indent=2))
    if world > 1:
        dist.barrier()

    done = _done_indices(shard_dir)
    todo = [i for i in range(config.num) if i % world == rank and i not in done]
    batches = [todo[k : k + config.batch_size] for k in range(0, len(todo), config.batch_size)]
    bar = _Bar(progress and rank == 0, f"sample {config.guidance}", len(todo) * world, len(done))
    t0 = time.time()
    for batch in batches:
        x, labels = generate(
            models, method, batch, seed=config.seed, steps=config.steps, solver=config.solver,
            labels_mode=config.labels, device=device,
        )
        images = decode(x)
        _atomic_savez(
            shard_dir / f"shard-{batch[0]:08d}-{batch[-1]:08d}-w{world}.npz",
            indices=np.asarray(batch, dtype=np.int64), images=images, labels=labels.numpy().astype(np.int64),
        )
        bar.advance(len(batch) * world)
    elapsed = time.time() - t0
    bar.close()
    generated = torch.tensor([len(todo)], dtype=torch.float64)
    if world > 1:
        dist.barrier()
        dist.all_reduce(generated)
    if rank == 0:
        _assemble(out, config.num)
        from sgbench.grid import save_grid

        with np.load(out / "samples.npz") as f:
            save_grid(f["arr_0"][:100], out / "grid.png", columns=min(10, main.config.num_classes) if config.labels == "balanced" else 10)
        times = eval_times(config.steps, config.solver)
        record = {
            "config": asdict(config),
            "guidance": {"name": method.name, "params": method.params},
            "model": {"checkpoint": config.checkpoint, "sha256": _cached_sha256(config.checkpoint), "config": main.config.to_dict()},
            "guide": {"checkpoint": config.guide, "sha256": _cached_sha256(config.guide)} if config.guide else None,
            "flops": cost_report(method, main.config, times, guide_config=guide.config if guide else None),
            "num_samples": config.num,
            "world_size": world,
            "seed": config.seed,
            "timing": {
                "generated_this_invocation": int(generated.item()),
                "wall_time_s": elapsed,
                "images_per_s": float(generated.item()) / elapsed if elapsed > 0 and generated.item() else None,
                "device": str(device),
                "threads": torch.get_num_threads(),
                "peak_memory_mb": _peak_memory_mb(device),
            },
            "environment": environment_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        previous = out / "run.json"
        if previous.exists() and not generated.item():
            record["timing"] = json.loads(previous.read_text()).get("timing", record["timing"])
        _atomic_write_text(out / "run.json", json.dumps(record, indent=2))
    if world > 1:
        dist.barrier()
    return out


def _assemble(out: Path, num: int) -> None:
    images: dict[int, np.ndarray] = {}
    labels: dict[int, int] = {}
    for p in sorted((out / "shards").glob("shard-*.npz")):
        with np.load(p) as f:
            for i, img, lab in zip(f["indices"], f["images"], f["labels"]):
                images[int(i)] = img
                labels[int(i)] = int(lab)
    missing = [i for i in range(num) if i not in images]
    if missing:
        raise SgbenchError(f"{out}: samples {missing[:5]}... are missing from the shards; rerun the same command to finish")
    arr = np.stack([images[i] for i in range(num)])
    lab = np.asarray([labels[i] for i in range(num)], dtype=np.int64)
    _atomic_savez(out / "samples.npz", arr_0=arr, labels=lab)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class _Bar:
    def __init__(self, enabled: bool, label: str, total: int, completed: int):
        self.enabled = enabled and not os.environ.get("SGBENCH_NO_PROGRESS")
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
            self.task = self.p.add_task(label, total=total + completed, completed=completed)
            self.p.start()

    def advance(self, n: int) -> None:
        if self.enabled:
            self.p.advance(self.task, n)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


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

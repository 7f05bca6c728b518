"""The sampling loop that fills a run directory.

Sample i's noise, label or prompt and token selections are drawn from seeds (run seed, i, ...), so a
run's samples do not depend on batch size, on the number of processes (torchrun: batch k goes to
process k mod world), or on where it was resumed: finished batches are kept as shards, and a rerun
with the same --out skips them. The files of a run are sgbench.runs.rundir's business.
`precision="bf16"` runs the model forwards under bfloat16 autocast.
"""

from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sgbench import __version__
from sgbench.core import seeding
from sgbench.models.sit import SiT
from sgbench.runs.rundir import RunDir, RunInfo, now
from sgbench.sampling.config import SampleConfig
from sgbench.sampling.decoding import make_decoder, resolve_decoder
from sgbench.sampling.solvers import eval_times, integrate
from sgbench.utils import distributed
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import cached_sha256
from sgbench.utils.progress import Bar


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


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict:
    return {
        "sgbench": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "git_commit": git_commit(),
    }


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
    sgbench.core.conditioning): x at t = 1, (B, C, H, W) float on the CPU. Sample i starts from
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
    from sgbench.core.conditioning import ClassConditioning

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
    from sgbench.core.flops import cost_report
    from sgbench.runs.grid import save_grid, save_labelled_grid
    from sgbench.core.guidance import Models
    from sgbench.core.guidance.base import check_guide, check_sparse_backbone
    from sgbench.models.checkpoint import load_model

    prompts = config.validate()  # text runs: the prompts file, read once for this whole call
    method = config.method()
    run = RunDir(config.out)
    identity = config.identity()
    if prompts is not None and identity["prompts_sha256"] != prompts.sha256:
        raise SgbenchError(f"{config.prompts} changed while sampling read it (two reads gave different sha256s): run the "
                           "command again when the file is no longer being written")
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
    if prompts is not None:
        from sgbench.core.conditioning import PromptSet

        prompt_set = PromptSet(prompts.texts)
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
    # Every rank lists the work before any rank writes a shard: a rank that listed it after another's first
    # shard would split a shorter list, leaving a batch to no one (rank 0 then found samples missing).
    distributed.barrier()
    mine = batches[rank::world]
    todo = sum(len(b) for b in batches)
    t0 = time.time()
    with Bar(f"sample {config.guidance}", total=config.num, completed=config.num - todo, enabled=progress and rank == 0) as bar:
        for batch in mine:
            if prompt_set is None:
                conditioning = class_conditioning(main.config, batch, config.labels, config.seed, device)
                per_sample = {"labels": conditioning.labels.cpu().numpy().astype(np.int64)}
            else:
                from sgbench.core.conditioning import prompt_conditioning

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
        # the run's own copy of its prompts, so evaluation never depends on the original file (docs/design.md, "Runs")
        prompts_copy = run.write_prompts(prompts.data, is_jsonl=prompts.is_jsonl) if prompts is not None else None
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
            conditioning=None if prompts is None else {
                "prompts": config.prompts, "sha256": prompts.sha256, "copy": prompts_copy, "num_prompts": len(prompt_set),
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

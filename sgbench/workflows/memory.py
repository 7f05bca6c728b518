"""Peak memory of sample + eval at two sample counts: the 50k-sample path must run in constant memory.

    python -m sgbench.workflows.memory                    # N = 1,000 and 20,000; exit 1 if a ratio >= 1.2
    python -m sgbench.workflows.memory --num 500 --num 5000 --keep runs/memory
    python -m sgbench.workflows.memory --nproc 2          # sampling under torchrun (gloo), 2 processes

A benchmark, not a test (4-6 minutes on a shared 2-core machine). It builds a tiny latent routed model and
a tiny random SD-style VAE (8x downsampling: 4x4x4 latents decode to 32x32 RGB), then runs the real
commands as child processes, each measured by its own peak resident set (ru_maxrss from wait4):

    sgbench sample -c MODEL --vae VAE -n N ...      # shards, assembly into samples.npz, run.json, grid
    sgbench eval fid RUN --ref animal-all -e animal  # streamed features, FD, IS, precision/recall, bootstrap

With --nproc, sampling runs under torchrun and its figure is the largest process of the group (wait4
reports the peak over the waited-for process tree). The children run with a fixed glibc mmap
threshold (see `peak_rss_mib`), so that allocator noise does not pass for growth.

What may grow with N is per-sample data the metrics need by nature: features (N x 128 float32 with the
`animal` extractor, N x 2048 with Inception, plus N x 2023 spatial features for sFID intervals), logits
and labels, and a (N,) row of bootstrap counts at a time. Images never sit in memory beyond one shard
(sampling) or one batch (evaluation).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

LIMIT = 1.2  # peak RSS at the larger N over the smaller N


def tiny_vae(directory: str | Path, *, seed: int = 0) -> Path:
    """A randomly initialised AutoencoderKL shaped like SD's (4 latent channels, 8x downsampling) but with
    8 channels per level, saved as diffusers does (`sgbench.models.vae.load_vae` reads it)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    model = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=32,
    )
    model.save_pretrained(directory)
    return Path(directory)


def tiny_latent_model(path: str | Path, *, seed: int = 0, num_classes: int = 10) -> Path:
    """A random routed SiT on 4x4x4 latents (16 tokens, route 1..2), saved as an sgbench checkpoint."""
    from sgbench.models import Route, SiT, preset
    from sgbench.models.checkpoint import save_model

    config = preset("Tiny-test", routes=(Route(1, 2, 0.5),), input_size=4, in_channels=4, patch_size=1,
                    num_classes=num_classes, name="Tiny-latent")
    g = torch.Generator().manual_seed(seed)
    model = SiT(config)
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.2
    save_model(model, path)
    return Path(path)


def peak_rss_mib(args: list[str], *, nproc: int = 1) -> float:
    """Run `python -m sgbench.cli ARGS` (under torchrun when nproc > 1) and return the peak resident set
    of the child and its process tree, in MiB."""
    # A fixed glibc mmap threshold returns every freed buffer of 1 MiB or more to the system, so the peak
    # measures what the code holds; with glibc's default (a threshold that rises after each free) the
    # extractor's 10-30 MB activations land on the heap, and its growth varied by +-100 MB between
    # identical runs here.
    env = dict(os.environ, OMP_NUM_THREADS="1", SGBENCH_NO_PROGRESS="1", MALLOC_MMAP_THRESHOLD_=str(2**20))
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", "29561"] if nproc > 1 else []
    proc = subprocess.Popen([sys.executable, *launcher, "-m", "sgbench.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"sgbench {' '.join(args)} failed ({proc.returncode}):\n{output[-3000:]}")
    return usage.ru_maxrss / 1024  # Linux reports KiB


def measure(num: int, folder: Path, model: Path, vae: Path, *, nproc: int = 1) -> dict[str, float]:
    run = folder / f"run-{num}-nproc{nproc}"
    sample = peak_rss_mib(["sample", "-c", str(model), "--vae", str(vae), "-g", "sg", "--gs", "0.25", "--gw", "0.75",
                           "--scale", "2", "-n", str(num), "-b", "500", "--steps", "4", "-o", str(run)], nproc=nproc)
    evaluate = peak_rss_mib(["eval", "fid", str(run), "--ref", "animal-all", "-e", "animal"])
    return {"sample": sample, "eval": evaluate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, action="append", help="sample counts (twice; default 1000 and 20000)")
    parser.add_argument("--keep", type=Path, help="keep the model, VAE and runs in this folder (default: a temporary one)")
    parser.add_argument("--nproc", type=int, default=1, help="sampling processes (torchrun, gloo on the CPU)")
    args = parser.parse_args(argv)
    small, large = sorted(args.num or [1000, 20000])
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        vae = tiny_vae(folder / "vae")
        model = tiny_latent_model(folder / "latent.safetensors")
        peaks = {n: measure(n, folder, model, vae, nproc=args.nproc) for n in (small, large)}
    ok = True
    print(f"peak RSS (MiB) of each child process; tiny latent routed model + tiny VAE, sg, 4 Euler steps, "
          f"{args.nproc} sampling process(es), animal extractor")
    print(f"{'':8}{'N = ' + format(small, ','):>14}{'N = ' + format(large, ','):>14}{'ratio':>8}{'growth/sample':>16}")
    for stage in ("sample", "eval"):
        ratio = peaks[large][stage] / peaks[small][stage]
        growth = (peaks[large][stage] - peaks[small][stage]) * 2**20 / (large - small)
        ok &= ratio < LIMIT
        print(f"{stage:8}{peaks[small][stage]:14.0f}{peaks[large][stage]:14.0f}{ratio:8.3f}{growth:14.0f} B")
    print(f"{'passed' if ok else 'FAILED'}: every ratio {'<' if ok else 'should be <'} {LIMIT}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Commands that make and move models: `train`, `import`, `export model`, `data encode`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.cli import Device, app
from sgbench.utils.errors import SgbenchError


@app.command(
    epilog="""Examples:

    sgbench train recipes/animal/routed.yaml

    sgbench train recipes/animal/routed.yaml train.steps=200 out=runs/train/quick

    sgbench train recipes/animal/routed.yaml --resume          # continue a killed run exactly

    torchrun --nproc_per_node 2 -m sgbench.cli train recipes/animal/routed.yaml   # DDP (gloo on CPU)
"""
)
def train(
    recipe: Annotated[Path, typer.Argument(help="Training recipe (YAML), e.g. recipes/animal/routed.yaml")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. train.steps=100")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.safetensors")] = False,
    device: Device = "cpu",
    stop_after: Annotated[Optional[int], typer.Option(help="Stop after this many steps (resume later)")] = None,
) -> None:
    """Train a sparse (routed or masked) or dense backbone with flow matching."""
    from sgbench.workflows.recipes import load_train_recipe
    from sgbench.workflows.train import train as run_training

    out = run_training(load_train_recipe(recipe, overrides or []), resume=resume, device=device, stop_after=stop_after)
    typer.echo(f"Trained: {out}")



export_app = typer.Typer(help="Write files other tools read: `sgbench export model`, `sgbench export geneval`.",
                         no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(export_app, name="export")


@export_app.command(
    "model",
    epilog="""Example:

    sgbench export model runs/train/animal-routed/model.safetensors sgbench/assets/animal-routed.safetensors --half
""",
)
def export_model_command(
    source: Annotated[Path, typer.Argument(help="A model checkpoint written by sgbench (e.g. OUT/model.safetensors)")],
    dest: Annotated[Path, typer.Argument(help="Where to write the shipped copy")],
    half: Annotated[bool, typer.Option("--half", help="Store float16 weights (loaded back as float32)")] = False,
) -> None:
    """Copy a trained model for shipping: weights (optionally float16) with its config and provenance."""
    from sgbench.models.checkpoint import export_model

    size = export_model(source, dest, half=half)
    typer.echo(f"Wrote {dest} ({size / 2**20:.1f} MiB)")


@app.command(
    "import",
    epilog="""Examples:

    sgbench import sit SiT-XL-2-256.pt sit-xl2.safetensors --vae data/sd-vae-ft-ema

    sgbench import tread latest.pt tread-xl2.safetensors --route 2:24:0.5 --vae stabilityai/sd-vae-ft-ema

    sgbench import tread rf-net.pt tread-rf.safetensors --dense --preconditioning rf

    sgbench import maskdit imagenet256-guidance.pt maskdit-xl2.safetensors

Kinds: tread (CompVis/tread, rf.py or edm.py), sit (willisma/SiT), maskdit (Anima-Lab/MaskDiT); dit
(facebookresearch/DiT) is refused with the reason. Time and output conventions are converted here,
once; the result samples with `sgbench sample -c DST` like a model trained by sgbench. A training
checkpoint written by another codebase's train.py than KIND's is refused, naming the kind that fits.

TREAD checkpoints record neither routes nor, for a bare network, the objective: give --route (or
--dense), and --preconditioning unless the network is wrapped in edm.py's EDMPrecond (keys model.*).

**Checkpoints are code.** A .pt/.pth file is a pickle, and unpickling a file from an untrusted source
can run arbitrary code on your machine. sgbench reads pickles with torch.load(weights_only=True), which
refuses anything but tensors and plain containers; --trust-pickle lifts that, only for files whose
source you trust. .safetensors files hold tensors only.
""",
)
def import_(
    kind: Annotated[str, typer.Argument(help="Which codebase wrote the checkpoint: tread, sit, maskdit (dit is refused)")],
    source: Annotated[Path, typer.Argument(help="Its checkpoint (.pt, .pth or .safetensors); EMA weights are used when present")],
    dest: Annotated[Path, typer.Argument(help="The sgbench model file to write (.safetensors)")],
    route: Annotated[Optional[list[str]], typer.Option("--route", help="tread: routed blocks as in its config, e.g. 2:24:0.5 (START:END[:RATE], "
                                                       "inclusive, 0-based; RATE = fraction dropped in training, default 0.5); repeatable; "
                                                       "tread needs --route or --dense")] = None,
    dense: Annotated[bool, typer.Option("--dense", help="tread: the model was trained without routing (instead of --route)")] = False,
    preconditioning: Annotated[Optional[str], typer.Option("--preconditioning", help="tread: rf (rf.py) or edm (edm.py); required for a "
                                                           "bare network, read from the keys when wrapped in EDMPrecond")] = None,
    num_heads: Annotated[Optional[int], typer.Option("--num-heads", help="Attention heads (default: DiT's table by width)")] = None,
    decoder_heads: Annotated[Optional[int], typer.Option("--decoder-heads", help="maskdit: decoder heads (default 16, as MaskDiT)")] = None,
    vae: Annotated[Optional[str], typer.Option("--vae", help="The VAE that decodes this model's latents (directory or Hugging Face cache "
                                               "name), recorded in DEST so `sgbench sample` needs no --vae")] = None,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="Allow arbitrary objects in a pickle: RUNS CODE from the file; "
                                               "only for checkpoints whose source you trust")] = False,
) -> None:
    """Convert another codebase's checkpoint (TREAD, SiT, MaskDiT) into an sgbench model file.
    Checkpoints from untrusted sources are code: see below."""
    from sgbench.models.checkpoint import load_extra
    from sgbench.models.importers import import_checkpoint
    from sgbench.models.sit import parse_route

    model = import_checkpoint(kind, source, dest, routes=[parse_route(r) for r in route or []], dense=dense,
                              preconditioning=preconditioning, num_heads=num_heads, decoder_heads=decoder_heads, vae=vae,
                              trust_pickle=trust_pickle)
    c = model.config
    sparsity = {"routing": f"routes {', '.join(f'{r.start}..{r.end}@{r.rate:g}' for r in c.routes)}",
                "masking": f"masking, decoder {c.masking.decoder_depth if c.masking else 0} blocks", "dense": "dense"}[c.sparsity_kind]
    null_class = load_extra(dest).get("null_class")  # a SiT trained without class dropout has none of its own
    typer.echo(f"Wrote {dest}: {c.name}, {c.in_channels}x{c.input_size}x{c.input_size} inputs, {sparsity}"
               + (f", decoded by {vae}" if vae else "") + (f"; null class {null_class}" if null_class else ""))


# === data ============================================================================================

data_app = typer.Typer(help="Datasets: `sgbench data encode` (ImageNet to SD-VAE latent shards).", no_args_is_help=True,
                       rich_markup_mode="markdown")
app.add_typer(data_app, name="data")


@data_app.command(
    "encode",
    epilog="""Examples:

    sgbench data encode IMAGENET/train data/imagenet256-sdvae --vae data/sd-vae-ft-ema --flip --device cuda

    torchrun --nproc_per_node 8 -m sgbench.cli data encode IMAGENET/train data/imagenet256-sdvae --vae data/sd-vae-ft-ema --flip --device cuda

Images (class folders, sorted as torchvision's ImageFolder) go through ADM's centre crop and the VAE's
encoder (posterior means x scaling factor, the scale DiT/SiT/TREAD train in); OUT gets manifest.json
and shard-NNNNN.npz files that `data.dataset: latents, data.path: OUT` trains on. Rerunning the same
command resumes (finished shards are kept); 1 or N processes write identical shards.
""",
)
def data_encode(
    images: Annotated[Path, typer.Argument(help="ImageFolder root: one folder of images per class, e.g. IMAGENET/train")],
    out: Annotated[Path, typer.Argument(help="Output directory (manifest.json + latent shards)")],
    vae: Annotated[str, typer.Option("--vae", help="The SD-VAE: a directory (config.json + diffusion_pytorch_model.safetensors) or a Hugging Face cache name")],
    flip: Annotated[bool, typer.Option("--flip", help="Also encode every image mirrored (DiT's flip augmentation, done once)")] = False,
    size: Annotated[int, typer.Option("--size", help="Image side after ADM's centre crop")] = 256,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Source images per shard (the unit of resuming and of work per process)")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per VAE forward (does not change the latents)")] = 32,
    device: Device = "cpu",
) -> None:
    """Encode an ImageFolder dataset into SD-VAE latent shards for training (torchrun-sharded, resumable)."""
    from sgbench.utils import distributed
    from sgbench.data.encode import encode_dataset
    from sgbench.models.vae import load_vae

    if size < 8 or shard_size < 1 or batch_size < 1:
        raise SgbenchError(f"Expected --size >= 8, --shard-size >= 1 and --batch-size >= 1 but got {size}, {shard_size} and {batch_size}")
    dev = distributed.local_device(distributed.parse_device(device))
    rank, _ = distributed.init(dev)
    encode_dataset(images, out, load_vae(vae, device=dev), size=size, flip=flip, shard_size=shard_size, batch_size=batch_size,
                   log=lambda m: typer.echo(m, err=True))
    if rank == 0:
        typer.echo(f"Encoded {images} into {out}")


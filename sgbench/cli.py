"""The `sgbench` command line: a Typer app only.

Each command turns options into the library's arguments and calls one library function; tables are
rendered by sgbench.results.render. A `SgbenchError` becomes a one-line message on stderr and exit
code 2; no traceback for user mistakes.

One vocabulary for every command (docs/design.md, "Command line"): --checkpoint/-c, --guidance/-g,
--num-samples/-n, --batch-size/-b, --out/-o, --steps, --solver, --seed, --device, --ref,
--extractor/-e, --format/-f, --vae, --precision, and the guidance parameters --scale, --gs, --gw,
--interval T_LO:T_HI ... generated from the guidance registry, so a new method's parameters become
options everywhere.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.utils.errors import SgbenchError


class _Group(typer.core.TyperGroup):
    """Turns SgbenchError, raised anywhere below, into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SgbenchError as e:
            typer.secho(f"Error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="sgbench",
    cls=_Group,
    help="Benchmark diffusion guidance methods on token-sparse diffusion transformers.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Benchmark diffusion guidance methods on token-sparse diffusion transformers.

    Start with `sgbench bench` (the embedded benchmark), or see `sgbench COMMAND --help`.
    """


# === the shared vocabulary ===========================================================================

Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="Model checkpoint (.safetensors written by sgbench)")]
Guide = Annotated[Optional[Path], typer.Option("--guide", help="Guide checkpoint for ag / ag+sg")]
NumSamples = Annotated[int, typer.Option("--num-samples", "-n", help="Number of samples")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", help="Samples per forward batch (does not change the samples)")]
Steps = Annotated[int, typer.Option("--steps", help="Solver steps")]
Solver = Annotated[str, typer.Option("--solver", help="euler or heun")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N (torchrun: each process its LOCAL_RANK GPU)")]
Ref = Annotated[str, typer.Option("--ref", help="Reference statistics: a name (`sgbench stats list`) or a reference .npz")]
Extractor = Annotated[str, typer.Option("--extractor", "-e", help="Feature extractor: animal (embedded benchmark) or inception (ADM's InceptionV3)")]
Weights = Annotated[Optional[Path], typer.Option("--weights", help="Extractor weights file (inception: else $SGBENCH_INCEPTION_WEIGHTS, else the torch hub cache)")]
Format = Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv or json")]
Model = Annotated[str, typer.Option("--model", "-m", help="Model preset, e.g. SiT-XL/2")]
Routes = Annotated[Optional[list[str]], typer.Option("--route", help="Routed blocks START:END (inclusive, 0-based); repeatable")]
Vae = Annotated[Optional[str], typer.Option("--vae", help="Latent models: the SD-VAE that decodes them, a directory (config.json + "
                                            "diffusion_pytorch_model.safetensors) or a Hugging Face cache name; default: the one the checkpoint records")]
Precision = Annotated[str, typer.Option("--precision", help="fp32, or bf16: model forwards under bfloat16 autocast (fast on CUDA; on the CPU "
                                        "also bf16, slow without bf16 matmul units); the VAE decodes in float32")]
GuidanceSpecs = Annotated[Optional[list[str]], typer.Option("--guidance", "-g", help="NAME or NAME:key=value,... (e.g. sg:gs=0.5,gw=0.9); repeatable")]


def with_guidance_options(command):
    """Add one option per guidance parameter of the registry (--scale, --gs, --gw, --interval, ...) to
    `command`, which receives the ones the user set as `guidance_params: dict[str, str]`."""
    from sgbench.core.guidance.base import parameter_specs

    specs = parameter_specs()
    signature = inspect.signature(command, eval_str=True)
    options = [
        inspect.Parameter(
            f"guidance_{spec.name}", inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[Optional[str], typer.Option(
                "--" + spec.name.replace("_", "-"), metavar=spec.metavar, rich_help_panel="Guidance parameters",
                help=f"{spec.help}; default {_defaults_text(spec.defaults)}",
            )],
        )
        for spec in specs.values()
    ]
    kept = [p for p in signature.parameters.values() if p.name != "guidance_params"]

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {name: kwargs.pop(f"guidance_{name}") for name in specs}
        return command(**kwargs, guidance_params={k: v for k, v in given.items() if v is not None})

    wrapper.__signature__ = signature.replace(parameters=kept + options)
    return wrapper


def _defaults_text(defaults: dict[str, str]) -> str:
    """{'sg': '0.5', 'cfg+sg': '0.2'} -> '0.5 (sg), 0.2 (cfg+sg)': each value once, with its methods."""
    by_value: dict[str, list[str]] = {}
    for method, value in defaults.items():
        by_value.setdefault(value, []).append(method)
    return ", ".join(f"{value} ({', '.join(methods)})" for value, methods in by_value.items())


def _method_specs(specs: list[str], shared: dict[str, str]) -> list:
    """--guidance NAME[:k=v,...] specs plus the shared guidance options -> built methods."""
    from sgbench.core.guidance import build_guidance, parse_spec

    methods = []
    for spec in specs:
        name, params = parse_spec(spec)
        for key, value in shared.items():
            if key in params:
                raise SgbenchError(f"Expected {key} once but got it both in --guidance {spec} and as --{key.replace('_', '-')}")
            params[key] = value
        methods.append(build_guidance(name, **params))
    return methods


def _model_config(model: str, route: list[str] | None, masking: float | None):
    from sgbench.models.sit import Masking, parse_route, preset

    overrides = {}
    if route:
        overrides["routes"] = tuple(parse_route(r) for r in route)
    if masking is not None:
        overrides["masking"] = Masking(rate=masking)
    return preset(model, **overrides)


def _gate(board, baseline: Path, tolerances: dict | None = None) -> None:
    """Check a leaderboard against a baseline; print the report; exit 1 on regression."""
    from sgbench import results

    gate = results.check_baseline(board, results.read_baseline(baseline), tolerances or {})
    typer.echo(gate.report(), err=True)
    if not gate.ok:
        raise typer.Exit(1)


# === train & export ==================================================================================


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


@export_app.command(
    "geneval",
    epilog="""Example (then run GenEval's evaluation/evaluate_images.py on OUT, and `sgbench ingest geneval`):

    sgbench sample -c CKPT --prompts geneval/prompts/evaluation_metadata.jsonl --images-per-prompt 4 -g cfg --scale 2.5 -o runs/t2i/cfg

    sgbench export geneval runs/t2i/cfg geneval_out --metadata geneval/prompts/evaluation_metadata.jsonl
""",
)
def export_geneval(
    run: Annotated[Path, typer.Argument(help="A text run sampled from GenEval metadata (sample --prompts)")],
    out: Annotated[Path, typer.Argument(help="New or empty folder for GenEval's layout: OUT/<prompt>/metadata.jsonl, samples/<k>.png")],
    metadata: Annotated[Optional[Path], typer.Option("--metadata", help="GenEval's evaluation_metadata.jsonl: refuse a run sampled from other prompts")] = None,
) -> None:
    """A text run in GenEval's folder layout, for the real GenEval evaluator (Mask2Former + CLIP, on a GPU)."""
    from sgbench.evaluation.geneval.run import export_run

    typer.echo(f"Wrote {export_run(run, out, metadata=metadata)}")


ingest_app = typer.Typer(help="Bring other tools' results into a run: `sgbench ingest geneval`.", no_args_is_help=True,
                         rich_markup_mode="markdown")
app.add_typer(ingest_app, name="ingest")


@ingest_app.command(
    "geneval",
    epilog="""Example:

    sgbench ingest geneval geneval_out/results.jsonl --run runs/t2i/cfg
""",
)
def ingest_geneval(
    results: Annotated[Path, typer.Argument(help="GenEval's results.jsonl for the run's exported images")],
    run: Annotated[Path, typer.Option("--run", help="The run the images came from (`sgbench export geneval`)")],
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals (0: none)")] = 200,
) -> None:
    """The real GenEval's per-image results into the run's metrics.json (GenEval's summary: the mean of the
    tasks' scores), so `compare` shows them beside everything else."""
    from sgbench.evaluation.geneval.run import ingest_run
    from sgbench.results.render import geneval_table

    typer.echo(geneval_table({"GenEval (ingested)": ingest_run(results, run, replicates=bootstrap)}), nl=False)


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

# === sample ==========================================================================================


@app.command(
    epilog="""Examples:

    sgbench sample -c sgbench/assets/animal-routed.safetensors -g sg --gs 0.5 --gw 0.9 --scale 1.5

    sgbench sample -c CKPT -g cfg --scale 2 --interval 0.2:0.8 -n 1000 -b 250 -o runs/cfg2

    sgbench sample -c CKPT -g ag --guide sgbench/assets/animal-routed-step900.safetensors --scale 2

    sgbench sample -c CKPT -g ag+sg --guide GUIDE --gs cosine:0:0.6 --guide-sparsity cosine:0.6:0 --scale 2

    sgbench sample -c sgbench/assets/animal-scenes-routed.safetensors --prompts sgbench/data/geneval_animal/evaluation_metadata.jsonl --images-per-prompt 4 -g cfg+sg --gs 0.2 --gw 0.7 --scale 2.5

    torchrun --nproc_per_node 2 -m sgbench.cli sample -c CKPT -n 1000   # the same samples as 1 process

    torchrun --nproc_per_node 8 -m sgbench.cli sample -c sit-xl2.safetensors --vae data/sd-vae-ft-ema -g sg --gs 0.5 --gw 0.9 --scale 1.5 -n 50000 -b 256 --device cuda --precision bf16 -o runs/imagenet/sg

A latent model (4 channels) is decoded by its VAE (--vae, or the one its checkpoint records) into uint8
images as a pixel model's; the VAE's identity goes into the run's identity and run.json.

Rerunning a command with the same --out resumes it (finished shards are kept) and leaves a finished
run as it is. `sgbench guidance list` shows every method with its parameters and defaults.
"""
)
@with_guidance_options
def sample(
    checkpoint: Checkpoint,
    guidance: Annotated[str, typer.Option("--guidance", "-g", help="Guidance method; `sgbench guidance list` shows all")] = "unguided",
    guide: Guide = None,
    steps: Steps = 40,
    solver: Solver = "euler",
    num: Annotated[Optional[int], typer.Option("--num-samples", "-n", help="Number of samples (default 64; with --prompts every prompt's images)")] = None,
    batch_size: BatchSize = 64,
    seed: Annotated[int, typer.Option("--seed", help="Run seed: sample i depends only on (seed, i)")] = 0,
    labels: Annotated[str, typer.Option("--labels", help="balanced (i mod K) or random")] = "balanced",
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="Text models: GenEval's evaluation_metadata.jsonl (a JSON object with `prompt` per line) or one prompt per line")] = None,
    images_per_prompt: Annotated[Optional[int], typer.Option("--images-per-prompt", help="Text models: images of each prompt (default 1; GenEval uses 4); sample i shows prompt i // K")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default: runs/sample/GUIDANCE-seedSEED)")] = None,
    device: Device = "cpu",
    vae: Vae = None,
    precision: Precision = "fp32",
    guidance_params: dict | None = None,
) -> None:
    """Generate samples with any registered guidance into a run directory (samples.npz, grid.png, run.json)."""
    from sgbench.sampling import SampleConfig, read_prompt_texts, sample_run

    if images_per_prompt is not None and prompts is None:
        raise SgbenchError("Expected --images-per-prompt only with --prompts FILE (text models); without prompts there is "
                           "nothing to repeat: drop --images-per-prompt")
    images_per_prompt = 1 if images_per_prompt is None else images_per_prompt
    if num is None:
        num = len(read_prompt_texts(prompts)) * images_per_prompt if prompts else 64
    config = SampleConfig(
        checkpoint=str(checkpoint), out=str(out or Path("runs/sample") / f"{guidance.replace('+', '_')}-seed{seed}"),
        guidance=guidance, guidance_params=guidance_params or {}, guide=str(guide) if guide else None, num=num,
        batch_size=batch_size, steps=steps, solver=solver, seed=seed, labels=labels, device=device, vae=vae,
        precision=precision, prompts=str(prompts) if prompts else None, images_per_prompt=images_per_prompt,
    )
    run = sample_run(config)
    typer.echo(f"Wrote {run}/samples.npz, grid.png, run.json")


# === guidance, flops, speed ==========================================================================

guidance_app = typer.Typer(help="Guidance methods: `sgbench guidance list`.", no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(guidance_app, name="guidance")


@guidance_app.command("list")
def guidance_list() -> None:
    """Every registered guidance method: its branches, its formula, its options, defaults and typical ranges."""
    from sgbench.results.render import guidance_table

    typer.echo(guidance_table(), nl=False)


@app.command(
    epilog="""Examples:

    sgbench flops --model SiT-XL/2 --route 2:24 -g unguided -g cfg -g sg:gs=0.5,gw=0.9

    sgbench flops --model SiT-XL/2 --route 2:24 -g sg --gs 0.3 --gw 0.8 --interval 0.2:1

    sgbench flops --model SiT-XL/2 --route 2:24 -g ag+sg --gs cosine:0:0.6 --guide-sparsity cosine:0.6:0

    sgbench flops --model SiT-XL/2 --masking 0.5 -g cfg+sg --convention macs --solver heun --json

    sgbench flops -c sgbench/assets/animal-scenes-routed.safetensors -g unguided -g cfg -g sg:gs=0.1,gw=0.8 -g cfg+sg:gs=0.2,gw=0.7
"""
)
@with_guidance_options
def flops(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model preset (default SiT-XL/2)")] = None,
    route: Routes = None,
    masking: Annotated[Optional[float], typer.Option(help="Masking model (MaskDiT decoder) with this training rate")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Cost this checkpoint's architecture (text models included) instead of --model")] = None,
    guidance: GuidanceSpecs = None,
    guide_model: Annotated[Optional[str], typer.Option(help="Guide preset for ag / ag+sg (default: the main model's)")] = None,
    steps: Steps = 40,
    solver: Solver = "euler",
    convention: Annotated[str, typer.Option(help="paper (linear/conv MACs, the SG paper), macs (+ attention), flops (2 x macs)")] = "paper",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full cost reports (all conventions, every step) as JSON")] = False,
    guidance_params: dict | None = None,
) -> None:
    """Analytic GFLOPs per step and per image of guidance methods on a model preset; needs no weights.

    Guidance options (--scale, --gs, ...) apply to every --guidance; per-method values go in the spec
    (`sg:gs=0.5,gw=0.9`). The table shows the paper's "GFLOPs per image per step" (one forward per
    branch, Table 2), its delta to the unguided dense model, the same with the shared prefix computed
    once (what `sgbench sample` executes), and the total per image.
    """
    import json

    from sgbench.core.flops import CONVENTIONS, check_costable, cost_report
    from sgbench.models.sit import preset
    from sgbench.results.render import flops_table
    from sgbench.core.flow import eval_times

    if convention not in CONVENTIONS:
        raise SgbenchError(f"Expected --convention in {', '.join(CONVENTIONS)} but got '{convention}'")
    times = eval_times(steps, solver)
    if checkpoint is not None:
        from sgbench.models.checkpoint import read_config

        ignored = [name for name, given in (("--model", model is not None), ("--route", bool(route)), ("--masking", masking is not None)) if given]
        if ignored:
            raise SgbenchError(f"--checkpoint costs {checkpoint}'s own architecture, so {' and '.join(ignored)} would be ignored: "
                               f"drop {' and '.join(ignored)}, or drop --checkpoint to cost a preset")
        main_config = read_config(checkpoint)
    else:
        main_config = _model_config(model or "SiT-XL/2", route, masking)
    guide_config = preset(guide_model) if guide_model else None
    default = ["unguided", "cfg"] + (["sg"] if main_config.sparsity_kind != "dense" else [])  # sg needs a sparse backbone
    methods = _method_specs(guidance or default, guidance_params or {})
    check_costable(methods, main_config, times, guide_config)
    reports = [cost_report(m, main_config, times, guide_config) for m in methods]
    if as_json:
        typer.echo(json.dumps(reports, indent=2))
        return
    detail = {"routing": f"route {', '.join(f'{r.start}..{r.end}' for r in main_config.routes)}",
              "masking": f"masking, decoder {main_config.masking.decoder_depth if main_config.masking else 0} blocks",
              "dense": "dense"}[main_config.sparsity_kind]
    title = f"{main_config.name} ({detail}), {steps} {solver} steps ({len(times)} evaluations), GFLOPs per image [{convention}]"
    typer.echo(flops_table(reports, title=title, convention=convention), nl=False)


@app.command(
    epilog="""Examples:

    sgbench speed                       # every method, SiT-XL/2 route 2..24, batch 2, CPU

    sgbench speed -g cfg -g sg:gs=0.5,gw=0.9 --batch-size 8 --repeats 5 --threads 2
"""
)
def speed(
    model: Model = "SiT-XL/2",
    route: Annotated[str, typer.Option("--route", help="Routed blocks START:END (inclusive)")] = "2:24",
    guidance: GuidanceSpecs = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per step")] = 2,
    repeats: Annotated[int, typer.Option(help="Timed rounds, each running every method once in turn (the median is reported), after one warm-up")] = 3,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's)")] = None,
    device: Device = "cpu",
) -> None:
    """Benchmark (not a test): wall time of one sampling step per guidance method, with random weights,
    next to its GFLOPs [paper], and the time ratio to cfg against the GFLOP ratio; also one forward at
    dense, gamma 0.5 and gamma 0.9. Timings share the machine with whatever else runs."""
    from sgbench.workflows.speed import benchmark
    from sgbench.utils.distributed import parse_device
    from sgbench.core.guidance import REGISTRY
    from sgbench.results.render import speed_table

    parse_device(device)
    config = _model_config(model, [route], None)
    methods = _method_specs(guidance or list(REGISTRY), {})
    result = benchmark(config, methods, batch=batch_size, repeats=repeats, threads=threads, device=device)
    title = f"{config.name} route {route}, batch {batch_size}, one step, median of {repeats} [{result['device']}]"
    typer.echo(speed_table(result, title=title), nl=False)


# === eval & stats ====================================================================================

eval_app = typer.Typer(
    help="Evaluate runs: `sgbench eval fid`, `lpips`, `clip`; `train-classifier` rebuilds the `animal` extractor.",
    no_args_is_help=True, rich_markup_mode="markdown",
)
stats_app = typer.Typer(
    help="Reference statistics: `sgbench stats build`, `import-adm`, `list`.", no_args_is_help=True, rich_markup_mode="markdown",
)
app.add_typer(eval_app, name="eval")
app.add_typer(stats_app, name="stats")


@eval_app.command(
    "fid",
    epilog="""Examples:

    sgbench eval fid runs/animal/sg --ref animal-all

    sgbench eval fid samples.npz --ref VIRTUAL_imagenet256 -e inception --weights weights-inception-2015-12-05-6726825d.pth --kid
""",
)
def eval_fid(
    samples: Annotated[Path, typer.Argument(help="Run directory (with samples.npz) or an ADM npz (arr_0 uint8 NHWC)")],
    ref: Ref,
    extractor: Extractor = "animal",
    weights: Weights = None,
    kid: Annotated[bool, typer.Option("--kid", help="Also compute KID (polynomial kernel, 100 subsets)")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Images per batch (does not change results)")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals (0: none; Inception at 50k: minutes per 100)")] = 200,
) -> None:
    """FID (FD in non-Inception features), sFID (inception), IS, precision and recall (k = 3, ADM's), optional
    KID, and class accuracy (animal), each with a 95% bootstrap interval.

    Streams the samples in batches; a run directory gets **metrics.json** (each metric with its
    extractor, weights sha256, reference, sample count and the sha256 of the samples it scored); a
    rerun on the same samples with the same extractor, reference and options reuses it.
    """
    from sgbench.evaluation import evaluate
    from sgbench.results.render import metrics_table

    result = evaluate(samples, ref, extractor, weights=weights, kid=kid, batch_size=batch_size, bootstrap_replicates=bootstrap)
    typer.echo(metrics_table(result), nl=False)
    if result["reused"]:
        typer.echo(f"Not recomputed: {samples}/metrics.json holds these metrics of these samples (same extractor, reference, options)", err=True)


@eval_app.command(
    "lpips",
    epilog="""Examples:

    sgbench eval lpips runs/imagenet/sg --against runs/imagenet/cond --trunk-weights alexnet-owt-7be5be79.pth
""",
)
def eval_lpips(
    samples: Annotated[Path, typer.Argument(help="Run directory or npz (e.g. the guided run)")],
    against: Annotated[Path, typer.Option("--against", help="Run directory or npz with the paired samples (same seeds, same order)")],
    net: Annotated[str, typer.Option(help="LPIPS trunk: alex or vgg")] = "alex",
    trunk_weights: Annotated[Optional[Path], typer.Option(help="torchvision trunk weights (else $SGBENCH_LPIPS_TRUNK, else the torch hub cache)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Pairs per batch")] = 64,
) -> None:
    """Mean LPIPS between sample i of two runs (the SG paper's Fig. 7 left); recorded in the run's metrics.json."""
    from sgbench.evaluation.lpips_score import evaluate_lpips

    out = evaluate_lpips(samples, against, net=net, trunk_weights=trunk_weights, batch_size=batch_size)
    typer.echo(f"LPIPS ({net}) over {out['num_pairs']} pairs: {out['lpips']:.4f}")


@eval_app.command(
    "clip",
    epilog="""Examples:

    sgbench eval clip runs/t2i/cfg --model ViT-L-14 --weights open_clip_pytorch_model.bin      # a text run: its own prompts

    sgbench eval clip samples.npz --prompts prompts.txt --weights open_clip_pytorch_model.bin  # an npz: one prompt per sample
""",
)
def eval_clip(
    samples: Annotated[Path, typer.Argument(help="A text run directory, or an npz with --prompts")],
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="For an npz: a text file, one prompt per sample in order")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Local open_clip weights file")] = None,
    model: Annotated[str, typer.Option(help="open_clip model name")] = "ViT-B-32",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch")] = 32,
) -> None:
    """CLIP score (100 x cosine, clipped at 0) of each image against its prompt, through open_clip with local
    weights; a run directory gets it (with a 95% interval) in its metrics.json."""
    from sgbench.evaluation.clip_score import clip_score
    from sgbench.evaluation.t2i import evaluate_clip_run

    if samples.is_dir():
        out = evaluate_clip_run(samples, model_name=model, weights=weights, batch_size=batch_size)
    else:
        if prompts is None or not prompts.is_file():
            raise SgbenchError(f"Expected --prompts FILE (one prompt per sample) for the npz {samples}, or a text run directory")
        out = clip_score(samples, prompts.read_text().splitlines(), model_name=model, weights=weights, batch_size=batch_size)
    typer.echo(f"CLIP score ({model}) over {out['num_samples']} samples: {out['clip_score']:.3f}")


@eval_app.command(
    "geneval",
    epilog="""Example:

    sgbench sample -c sgbench/assets/animal-scenes-routed.safetensors --prompts sgbench/data/geneval_animal/evaluation_metadata.jsonl --images-per-prompt 4 -g cfg --scale 2.5 -o runs/t2i/cfg

    sgbench eval geneval runs/t2i/cfg
""",
)
def eval_geneval(
    run: Annotated[Path, typer.Argument(help="A text run of Animal scenes, sampled from GenEval metadata")],
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals (0: none)")] = 200,
) -> None:
    """The offline GenEval of the embedded Animal scenes: GenEval's rules over a detector of the canvas's
    objects, its class classifier and colour fit. Per-image results in GenEval's format go to
    RUN/geneval/results.jsonl, task scores and the overall (with 95% intervals) to metrics.json. For
    real images use `sgbench export geneval` and the real evaluator."""
    from sgbench.evaluation.geneval.run import evaluate_run
    from sgbench.results.render import geneval_table

    typer.echo(geneval_table({str(run): evaluate_run(run, replicates=bootstrap)}), nl=False)


@eval_app.command(
    "hpsv3",
    epilog="""Example (a GPU; the extra: pip install 'sgbench[hpsv3]'):

    sgbench eval hpsv3 runs/t2i/sg --checkpoint HPSv3.safetensors --base-model Qwen2-VL-7B-Instruct --device cuda
""",
)
def eval_hpsv3(
    run: Annotated[Path, typer.Argument(help="A text run directory")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="HPSv3.safetensors (huggingface.co/MizzenAI/HPSv3)")],
    base_model: Annotated[Path, typer.Option("--base-model", help="Local Qwen2-VL-7B-Instruct directory")],
    device: Device = "cuda",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per reward call")] = 16,
) -> None:
    """HPSv3 (human preference) of each image against its prompt, per prompt category when the prompts
    carry a `category`, overall as HPSv3's benchmark computes it (the mean of the category means)."""
    from sgbench.evaluation.t2i import evaluate_hpsv3_run

    scores = evaluate_hpsv3_run(run, checkpoint=checkpoint, base_model=base_model, device=device, batch_size=batch_size)
    typer.echo(f"HPSv3 over {len(scores.mu)} images: {scores.overall:.3f}"
               + "".join(f"\n  {c}: {m:.3f}" for c, m in scores.category_means.items()))


@eval_app.command("train-classifier")
def eval_train_classifier(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (default: the shipped sgbench/assets/animal_classifier.safetensors)")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs over the 9,000 training images")] = 15,
    seed: Annotated[int, typer.Option(help="Training seed")] = 0,
) -> None:
    """Train the `animal` extractor's classifier on Animal-MNIST `train` and report top-1 on `test` (one CPU thread, a few minutes)."""
    from sgbench.evaluation.animal_classifier import DEFAULT_WEIGHTS
    from sgbench.evaluation.train_classifier import train_animal_classifier

    record = train_animal_classifier(out or DEFAULT_WEIGHTS, epochs=epochs, seed=seed)
    typer.echo(f"Wrote {out or DEFAULT_WEIGHTS}: test accuracy {record['test_accuracy']:.4f}, train {record['train_accuracy']:.4f}, "
               f"{record['train_seconds']:.0f} s")


@stats_app.command(
    "build",
    epilog="""Examples:

    sgbench stats build animal-all --from animal --extractor animal

    sgbench stats build animal-test --from animal:test

    sgbench stats build my-ref --from path/to/images/ --extractor inception
""",
)
def stats_build(
    name: Annotated[str, typer.Argument(help="Reference name (the manifest key and npz file name)")],
    source: Annotated[str, typer.Option("--from", help="animal, animal:SPLIT, a folder of images, or an npz with arr_0")],
    extractor: Extractor = "animal",
    weights: Weights = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the reference exists")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch")] = 250,
) -> None:
    """Compute reference statistics (mu, sigma, spatial stats, feature rows for precision/recall) once; cached after."""
    from sgbench.evaluation.reference import build_reference, reference_dir

    entry, computed = build_reference(name, source, extractor=extractor, weights=weights, force=force, batch_size=batch_size)
    typer.echo(f"{'Built' if computed else 'Cached, not recomputed:'} {reference_dir() / entry.file} "
               f"({entry.num_images} images, {entry.resolution}px, {entry.extractor})")


@stats_app.command(
    "import-adm",
    epilog="""Examples:

    sgbench stats import-adm VIRTUAL_imagenet256_labeled.npz --weights weights-inception-2015-12-05-6726825d.pth
""",
)
def stats_import_adm(
    path: Annotated[Path, typer.Argument(help="ADM reference batch (arr_0, mu, sigma, mu_s, sigma_s)")],
    name: Annotated[Optional[str], typer.Option(help="Reference name (default: file stem without _labeled)")] = None,
    weights: Weights = None,
    force: Annotated[bool, typer.Option(help="Import again even if the reference exists")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch")] = 100,
) -> None:
    """Import the ADM suite's reference statistics, plus Inception features of its images for precision/recall."""
    from sgbench.evaluation.reference import import_adm, reference_dir

    entry, computed = import_adm(path, name=name, weights=weights, force=force, batch_size=batch_size)
    typer.echo(f"{'Imported' if computed else 'Cached, not recomputed:'} {reference_dir() / entry.file}. {entry.notes}")


@stats_app.command("list")
def stats_list() -> None:
    """Every reference known here: shipped, built into $SGBENCH_REFERENCE_STATS or the user's cache."""
    from sgbench.evaluation.reference import locate
    from sgbench.results.render import rich_text, table

    rows = [[e.name, e.extractor, str(e.num_images), str(e.resolution), e.source, e.weights_sha256[:12], str(root)]
            for e, root in locate().values()]
    typer.echo(rich_text(table("Reference statistics", ["name", "extractor", "images", "px", "source", "weights sha256", "folder"],
                               rows, left=7)), nl=False)


geneval_app = typer.Typer(help="The embedded GenEval: `sgbench geneval prompts`, `validate`, `train-classifier`.",
                          no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(geneval_app, name="geneval")


@geneval_app.command("prompts", epilog="Example:\n\n    sgbench geneval prompts --seed 43 --out my_prompts.jsonl\n")
def geneval_prompts(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write evaluation_metadata.jsonl")],
    seed: Annotated[int, typer.Option("--seed", help="GenEval's generator seed (the shipped set: 43)")] = 43,
) -> None:
    """GenEval's prompt generator (its six tasks, counts, colours, relations and proportions) over the ten
    Animal-MNIST classes, as GenEval's evaluation_metadata.jsonl."""
    from sgbench.evaluation.geneval.prompts import write_prompts

    typer.echo(f"Wrote {len(write_prompts(out, seed))} prompts to {out}")


@geneval_app.command("validate", epilog="Example:\n\n    sgbench geneval validate --seed 0\n")
def geneval_validate(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the ground-truth scenes and of the shuffle")] = 0,
    images_per_prompt: Annotated[int, typer.Option("--images-per-prompt", help="Ground-truth images per prompt")] = 4,
) -> None:
    """Check the offline evaluator: ground-truth scenes of every embedded prompt (test silhouettes) should
    score near 1 on every task, and the same images judged against shuffled prompts far lower."""
    from sgbench.evaluation.geneval.evaluate import validate_geneval, validation_table

    typer.echo(validation_table(validate_geneval(seed=seed, images_per_prompt=images_per_prompt)))


@geneval_app.command("train-classifier")
def geneval_train_classifier(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (default: the shipped sgbench/assets/scene_object_classifier.safetensors)")] = None,
    seed: Annotated[int, typer.Option(help="Training seed")] = 0,
    workers: Annotated[int, typer.Option(help="Members trained side by side, one thread each (same weights)")] = 1,
) -> None:
    """Train the offline GenEval's object classifier (two small nets on rendered `train` silhouettes, the
    temperature fit on held-out `train` silhouettes; each net about 35 minutes on one CPU thread)."""
    from sgbench.evaluation.geneval.detect import DEFAULT_WEIGHTS
    from sgbench.evaluation.geneval.train_classifier import train_scene_classifier

    record = train_scene_classifier(out or DEFAULT_WEIGHTS, seed=seed, workers=workers)
    typer.echo(f"Wrote {out or DEFAULT_WEIGHTS}: {record}")


# === bench, compare, sweep ===========================================================================


@app.command(
    epilog="""Examples:

    sgbench bench                       # the embedded benchmark: recipes/bench/animal.yaml

    sgbench bench --quick               # three configurations, 100 samples each, gated against its baseline

    sgbench bench t2i                   # the text-to-image leaderboard: GenEval on a stratified prompt subset

    sgbench bench t2i --full            # GenEval's protocol: every prompt, 4 images each

    sgbench bench recipes/bench/animal.yaml --out runs/mybench --format markdown

Every cell is an ordinary run directory (OUT/full/<backbone>/<label>): a rerun keeps finished cells
and resumes a killed one; `sgbench compare OUT/full` rebuilds the leaderboard at any time.
"""
)
def bench(
    recipe: Annotated[Optional[str], typer.Argument(help="Bench recipe: a file, or a shipped name (animal, t2i; default animal)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Only the recipe's quick subset (gated against its baseline)")] = False,
    full: Annotated[bool, typer.Option("--full", help="A text benchmark's whole protocol (GenEval: every prompt, 4 images each)")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the recipe's)")] = None,
    fmt: Format = "table",
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Gate against this baseline instead of the recipe's (exit 1 on regression)")] = None,
) -> None:
    """The main job: sample, evaluate and rank every guidance configuration of a bench recipe."""
    from sgbench import results
    from sgbench.workflows.bench import baseline_of, load_bench_recipe, run_bench

    results.check_format(fmt)
    r = load_bench_recipe(recipe)
    gate = baseline_of(r, quick=quick, full=full, given=baseline)  # read now: a bad baseline fails before sampling
    board = run_bench(r, quick=quick, full=full, out=str(out) if out else None, log=lambda m: typer.echo(m, err=True))
    typer.echo(results.render(board, fmt), nl=False)
    if gate is not None:
        _gate(board, gate)


@app.command(
    epilog="""Examples:

    sgbench compare runs/bench                                  # every run directory inside, best FD first

    sgbench compare runs/sg-* runs/cfg-* --sort gflops_step --format markdown --out leaderboard.md

    sgbench compare runs/bench --format csv --ref animal-all --extractor animal

    sgbench compare runs/bench --save-baseline baselines/quick.json --tolerance fid=0.5

    sgbench compare runs/bench --baseline baselines/quick.json --tolerance class_accuracy=0.05   # CI gate

    sgbench compare runs/bench/imagenet-sit-xl2/full --reference paper     # the paper's Table 2 beside your runs

Columns: FD (FID with the inception extractor), sFID, IS, precision, recall, class accuracy, each ± half
its 95% interval; GFLOPs per image per step (paper convention, Table 2), as run, Δ to the unguided
dense model, GFLOPs per image, measured images/s. `tier` groups rows whose intervals overlap; `*` marks
the Pareto front of FD against GFLOPs within a backbone; runs that differ only in seed are one row.
Broken or unevaluated runs are listed below the table with the reason. With --baseline the exit code
is 1 when a configuration regressed beyond its tolerance and its 95% interval, or is missing.
--reference paper adds the paper's reported rows in a block of their own (never ranked with the runs):
Table 2, plus Table 1 when a run's backbone masks tokens and Table 3 when runs are scored with Inception.
"""
)
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders of run directories")],
    sort: Annotated[Optional[str], typer.Option("--sort", "-s", help="Column (default: FD, or GenEval for text-to-image runs): fd (or fid), sfid, is, precision, recall, class_accuracy, kid, geneval, single_object, ..., hpsv3, clip_score, gflops_step, gflops_step_run, delta_gflops_step, gflops_image, images_per_s")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Worst first")] = False,
    fmt: Format = "table",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the leaderboard to this file instead of stdout")] = None,
    ref: Annotated[Optional[str], typer.Option("--ref", help="Reference whose metrics to show (default: the baseline's, else the one most runs have)")] = None,
    extractor: Annotated[Optional[str], typer.Option("--extractor", "-e", help="Extractor whose metrics to show (default as for --ref)")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Regression gate: compare with this baseline JSON; exit 1 on regression")] = None,
    tolerance: Annotated[Optional[list[str]], typer.Option("--tolerance", "-t", help="METRIC=VALUE (absolute) or METRIC=N% (relative); overrides the baseline's")] = None,
    save_baseline: Annotated[Optional[Path], typer.Option("--save-baseline", help="Write this leaderboard as a baseline JSON (tolerances stored inside)")] = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Also write the figures these runs support (PNG) into this folder")] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", help="paper: the paper's reported rows beside the runs, labelled and "
                                                     "never ranked with them; paper:N,M picks its tables (1-3 ImageNet, 4-5 text-to-image)")] = None,
) -> None:
    """The leaderboard of run directories: quality ± 95% interval next to cost, tiers, Pareto front."""
    from sgbench import results
    from sgbench.results.paper import reference_tables

    results.check_format(fmt)
    tolerances = results.parse_tolerances(tolerance or [])
    base = results.read_baseline(baseline) if baseline else None
    if base is not None:
        extractor, ref = extractor or base.get("extractor"), ref or base.get("reference")
    loaded = results.load_runs(runs, extractor=extractor, reference=ref)
    boards, texts = [], []
    for kind in results.kinds(loaded):
        sort_key = results.column_key(sort or results.PRIMARY[kind])
        board = results.leaderboard(loaded, kind=kind, sort=sort_key,
                                    descending=None if not reverse else results.COLUMNS[sort_key].better < 0)
        paper = reference_tables(reference, masking=any(r.sparsity == "masking" for r in board.rows),
                                 inception=board.extractor == "inception", text=kind == "t2i") if reference else None
        boards.append(board)
        texts.append(results.render(board, fmt, paper=paper))
    text = "\n".join(texts)  # class and text-to-image runs never share a table
    if out:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        except OSError as e:
            raise SgbenchError(f"Cannot write {out}: {e.strerror or e}") from None
        typer.echo(f"Wrote {out} ({sum(len(b.rows) for b in boards)} configurations, "
                   f"{sum(len(b.problems) for b in boards)} broken or partial runs)", err=True)
    else:
        typer.echo(text, nl=False)
    if plots:
        from sgbench.results.plots import plot_leaderboard

        for p in plot_leaderboard(boards[0], plots):
            typer.echo(f"Wrote {p}", err=True)
    if save_baseline:
        results.save_baseline(boards, save_baseline, tolerances)
        typer.echo(f"Wrote baseline {save_baseline} ({sum(len(b.rows) for b in boards)} configurations)", err=True)
    if base is not None:
        _gate(boards, baseline, tolerances)


@app.command(
    epilog="""Examples:

    sgbench sweep -c CKPT --ref animal-all --grid gs=0,0.25,0.5 --grid gw=0.5,0.7,0.9 --grid scale=1.3,1.5,1.7,1.9

    sgbench sweep -c CKPT --ref animal-all --sparsity 0,0.25,0.5,0.75 -n 200 --steps 20   # Fig. 4 only

    sgbench sweep -c CKPT --ref animal-all -g cfg --grid scale=1,1.5,2,3 --seed 0 --seed 1

    sgbench sweep -c CKPT --ref animal-all --grid scale=1.5,2 --gs 0.5 --gw 0.9 --interval 0.2:0.8

One run directory per cell under --out (compare them with `sgbench compare OUT`); cells the method
rejects (sg's gs >= gw) are skipped with the reason, and finished cells are kept, so rerunning the same
command resumes the sweep. Guidance options (--gs, --scale, ...) hold a parameter fixed in every cell.
Figures (PNG, in OUT/figures): FD over (gs, gw) per scale (Fig. 6), throughput over (gs, gw) (Fig. A1),
FD against sparsity without guidance (Fig. 4: `--sparsity`, i.e. sg at w = 1, where only the strong
branch runs), or FD against the one parameter another method varies.
"""
)
@with_guidance_options
def sweep(
    checkpoint: Checkpoint,
    ref: Ref,
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="NAME=V1,V2,... a swept guidance parameter (repeat)")] = None,
    guidance: Annotated[str, typer.Option("--guidance", "-g", help="Guidance method; `sgbench guidance list` shows all")] = "sg",
    sparsity: Annotated[Optional[str], typer.Option(help="G1,G2,... extra cells without guidance at these sparsities (Fig. 4)")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Run seed (repeat for several; compare shows mean ± interval)")] = None,
    guide: Guide = None,
    extractor: Extractor = "animal",
    num: NumSamples = 100,
    batch_size: BatchSize = 100,
    steps: Steps = 40,
    solver: Solver = "euler",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the cells' run directories")] = Path("runs/sweep"),
    figures: Annotated[Optional[Path], typer.Option(help="Folder for the PNG figures (default OUT/figures)")] = None,
    device: Device = "cpu",
    guidance_params: dict | None = None,
) -> None:
    """Sample and evaluate a grid of guidance parameters, then plot it (the paper's Fig. 4, 6 and A1)."""
    from sgbench import results
    from sgbench.evaluation.reference import reference_name
    from sgbench.results.plots import plot_sweep
    from sgbench.workflows.sweep import SweepLog, parse_grid, run_sweep

    try:
        levels = [float(g) for g in sparsity.split(",") if g.strip()] if sparsity else []
    except ValueError:
        raise SgbenchError(f"Expected --sparsity as G1,G2,... (e.g. 0,0.25,0.5) but got '{sparsity}'") from None
    log = SweepLog()
    figures = figures or out / "figures"
    dirs = run_sweep(
        checkpoint, out, ref=ref, extractor=extractor, method=guidance, grid=parse_grid(grid or []),
        fixed=guidance_params or {}, sparsity=levels, seeds=seed or [0], guide=guide, num=num, batch_size=batch_size,
        steps=steps, solver=solver, device=device, log=log, figures=figures, echo=typer.echo,
    )
    typer.echo(f"{len(log.ran)} cells run, {len(log.resumed)} already finished, {len(log.skipped)} skipped as invalid")
    if not dirs:
        raise SgbenchError("Every cell of the sweep was invalid; see the reasons above")
    board = results.leaderboard(results.load_runs(dirs, extractor=extractor, reference=reference_name(ref)))
    typer.echo(results.render(board, "table"), nl=False)
    for p in plot_sweep(dirs, figures, extractor=extractor, reference=reference_name(ref)):
        typer.echo(f"Wrote {p}")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

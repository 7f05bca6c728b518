"""The `sgbench` command line: a Typer app only.

Each command turns options into config objects and calls one library function. A `SgbenchError`
becomes a one-line message on stderr and exit code 2; no traceback for user mistakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.errors import SgbenchError

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


# === train ===========================================================================================


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
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
    stop_after: Annotated[Optional[int], typer.Option(help="Stop after this many steps (resume later)")] = None,
) -> None:
    """Train a sparse (routed or masked) or dense backbone with flow matching."""
    from sgbench.config import load_train_recipe
    from sgbench.train import train as run_training

    out = run_training(load_train_recipe(recipe, overrides or []), resume=resume, device=device, stop_after=stop_after)
    typer.echo(f"Trained: {out}")


@app.command(
    epilog="""Example:

    sgbench export runs/train/animal-routed/model.safetensors sgbench/assets/animal-routed.safetensors --half
"""
)
def export(
    source: Annotated[Path, typer.Argument(help="A model checkpoint written by sgbench (e.g. OUT/model.safetensors)")],
    dest: Annotated[Path, typer.Argument(help="Where to write the shipped copy")],
    half: Annotated[bool, typer.Option("--half", help="Store float16 weights (loaded back as float32)")] = False,
) -> None:
    """Copy a trained model for shipping: weights (optionally float16) with its config and provenance."""
    import torch

    from sgbench.models.checkpoint import load_extra, load_model, save_model

    save_model(load_model(source), dest, dtype=torch.float16 if half else None, extra={**load_extra(source), "exported_from": str(source)})
    typer.echo(f"Wrote {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")


# === sample ==========================================================================================


def parse_params(items: list[str] | None) -> dict:
    """`--param eta=0.5 --param momentum=-0.5` -> {'eta': 0.5, 'momentum': -0.5} (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise SgbenchError(f"Expected --param as name=value (e.g. eta=0.5) but got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = yaml.safe_load(v)
    return out


def guidance_options(scale, gs, gw, interval, params) -> dict:
    """Only what the user set: the method refuses options it does not take."""
    out = parse_params(params)
    for name, value in (("scale", scale), ("gs", gs), ("gw", gw)):
        if value is not None:
            out[name] = value
    if interval is not None:
        try:
            lo, hi = (float(v) for v in interval.split(","))
        except ValueError:
            raise SgbenchError(f"Expected --interval as T_LO,T_HI (e.g. 0.2,0.8) but got '{interval}'") from None
        out["interval"] = (lo, hi)
    return out


@app.command(
    epilog="""Examples:

    sgbench sample --checkpoint sgbench/assets/animal-routed.safetensors --guidance sg --gs 0.5 --gw 0.9 --scale 1.5

    sgbench sample --checkpoint CKPT --guidance cfg --scale 2 --num-samples 1000 --batch-size 250 --out runs/cfg2

    sgbench sample --checkpoint CKPT --guidance ag --guide sgbench/assets/animal-routed-step900.safetensors --scale 2

    torchrun --nproc_per_node 2 -m sgbench.cli sample --checkpoint CKPT -n 1000   # same samples as 1 process

Rerunning a command with the same --out resumes it; finished shards are kept.
"""
)
def sample(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Model checkpoint (.safetensors)")],
    guidance: Annotated[str, typer.Option("--guidance", "-g", help="Guidance method; `sgbench guidance list` shows all")] = "unguided",
    scale: Annotated[Optional[float], typer.Option(help="Guidance scale omega (1 = no guidance)")] = None,
    gs: Annotated[Optional[float], typer.Option(help="Strong-branch sparsity gamma_strong (sg, cfg+sg, ag+sg)")] = None,
    gw: Annotated[Optional[float], typer.Option(help="Weak-branch sparsity gamma_weak (sg, cfg+sg), gs < gw < 1")] = None,
    interval: Annotated[Optional[str], typer.Option(help="Guidance interval T_LO,T_HI in t (0 noise, 1 data)")] = None,
    guide: Annotated[Optional[Path], typer.Option(help="Guide checkpoint for ag / ag+sg")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Other method parameters, name=value")] = None,
    steps: Annotated[int, typer.Option(help="Solver steps")] = 40,
    solver: Annotated[str, typer.Option(help="euler or heun")] = "euler",
    num: Annotated[int, typer.Option("--num-samples", "-n", help="Number of samples")] = 64,
    batch_size: Annotated[int, typer.Option(help="Samples per forward batch (does not change the samples)")] = 64,
    seed: Annotated[int, typer.Option(help="Run seed: sample i depends only on (seed, i)")] = 0,
    labels: Annotated[str, typer.Option(help="balanced (i mod K) or random")] = "balanced",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default runs/sample/<guidance>-<seed>)")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda ...")] = "cpu",
) -> None:
    """Generate samples with any registered guidance into a run directory (samples.npz, grid.png, run.json)."""
    from sgbench.sampling import SampleConfig, sample_run

    config = SampleConfig(
        checkpoint=str(checkpoint), out=str(out or Path("runs/sample") / f"{guidance.replace('+', '_')}-seed{seed}"),
        guidance=guidance, guidance_params=guidance_options(scale, gs, gw, interval, param),
        guide=str(guide) if guide else None, num=num, batch_size=batch_size, steps=steps, solver=solver, seed=seed,
        labels=labels, device=device,
    )
    run = sample_run(config)
    typer.echo(f"Wrote {run}/samples.npz, grid.png, run.json")


# === guidance & flops ================================================================================

guidance_app = typer.Typer(
    help="Guidance methods: `sgbench guidance list`.", no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(guidance_app, name="guidance")


@guidance_app.command("list")
def guidance_list() -> None:
    """Every registered guidance method: its branches, its formula, its parameters, defaults and typical ranges."""
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from sgbench.guidance import REGISTRY, build_guidance

    table = Table(title="Guidance methods: D = D_weak + w (D_strong - D_weak); gamma = fraction of tokens dropped")
    for col in ("name", "formula", "branches", "parameters: default (typical)"):
        table.add_column(col)
    for name in REGISTRY:
        m = build_guidance(name)
        names = {"strong": "gs", "weak": "guide_sparsity" if "guide_sparsity" in m.params else "gw"}
        branches = []
        for b in filter(None, (m.strong(0.0), m.weak(0.0))):
            gamma = names[b.role] if names[b.role] in m.params else f"{b.sparsity:g}"
            branches.append(f"{b.role}: {b.model}, {b.condition}, gamma={gamma}")
        typical = {f.name: f.metadata.get("typical", "") for f in dataclasses.fields(m)}
        params = [f"{k}={_show(v)}" + (f" ({typical[k]})" if typical[k] else "") for k, v in m.params.items()]
        if m.needs_guide:
            params.append("needs --guide")
        table.add_row(name, m.summary, "\n".join(branches), "\n".join(params) or "-")
    Console().print(table)


def _show(value) -> str:
    return ":".join(f"{x:g}" for x in value) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value)


def _guidance_specs(specs: list[str], options: dict) -> list:
    """--guidance NAME[:k=v,...] specs plus the shared --gs/--gw/... options -> built methods."""
    from sgbench.guidance import build_guidance, parse_spec

    methods = []
    for spec in specs:
        name, params = parse_spec(spec)
        for key, value in options.items():
            if value is not None:
                if key in params:
                    raise SgbenchError(f"Expected {key} once but got it both in --guidance {spec} and as --{key.replace('_', '-')}")
                params[key] = value
        methods.append(build_guidance(name, **params))
    return methods


@app.command(
    epilog="""Examples:

    sgbench flops --model SiT-XL/2 --route 2:24 --guidance unguided --guidance cfg --guidance sg:gs=0.5,gw=0.9

    sgbench flops --model SiT-XL/2 --route 2:24 --guidance sg --gs 0.3 --gw 0.8 --interval 0.2:1

    sgbench flops --model SiT-XL/2 --route 2:24 --guidance ag+sg:gs=cosine:0:0.6,guide_sparsity=cosine:0.6:0

    sgbench flops --model SiT-XL/2 --masking 0.5 --guidance cfg+sg --convention macs --json
"""
)
def flops(
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset, e.g. SiT-XL/2")] = "SiT-XL/2",
    route: Annotated[Optional[list[str]], typer.Option(help="Routed blocks START:END (inclusive, 0-based); repeatable")] = None,
    masking: Annotated[Optional[float], typer.Option(help="Masking model (MaskDiT decoder) with this training rate")] = None,
    guidance: Annotated[Optional[list[str]], typer.Option("--guidance", "-g", help="NAME or NAME:key=value,...; repeatable")] = None,
    guide_model: Annotated[Optional[str], typer.Option(help="Guide preset for ag / ag+sg (default: the main model's)")] = None,
    scale: Annotated[Optional[str], typer.Option(help="Guidance scale w for every --guidance")] = None,
    gs: Annotated[Optional[str], typer.Option(help="gamma_strong: a value (0.5) or a schedule over t (linear:0.2:0.6, cosine:0.6:0)")] = None,
    gw: Annotated[Optional[str], typer.Option(help="gamma_weak: a value (0.9) or a schedule over t")] = None,
    guide_sparsity: Annotated[Optional[str], typer.Option(help="ag+sg's guide sparsity: a value or a schedule over t")] = None,
    interval: Annotated[Optional[str], typer.Option(help="Guidance interval T_LO:T_HI (t = 0 noise)")] = None,
    eta: Annotated[Optional[str], typer.Option(help="APG's eta")] = None,
    momentum: Annotated[Optional[str], typer.Option(help="APG's momentum beta")] = None,
    norm_threshold: Annotated[Optional[str], typer.Option(help="APG's norm threshold r")] = None,
    steps: Annotated[int, typer.Option(help="Euler steps (model evaluations at t = i / steps)")] = 40,
    convention: Annotated[str, typer.Option(help="paper (linear/conv MACs, the SG paper), macs (+ attention), flops (2 x macs)")] = "paper",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full cost reports (all conventions, every step) as JSON")] = False,
) -> None:
    """Analytic GFLOPs per step and per image of guidance methods on a model preset; needs no weights.

    The options --scale, --gs, --gw, ... apply to every --guidance; per-method values go in the spec
    (`sg:gs=0.5,gw=0.9`). The table shows the paper's "GFLOPs per image per step" (mean over the
    steps), its delta to the unguided dense model, the same with the shared prefix computed once (what
    `sgbench sample` executes), and the total per image.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from sgbench.flops import CONVENTIONS, cost_report, euler_times
    from sgbench.models.sit import Masking, parse_route, preset

    if convention not in CONVENTIONS:
        raise SgbenchError(f"Expected --convention in {', '.join(CONVENTIONS)} but got '{convention}'")
    if steps < 1:
        raise SgbenchError(f"Expected --steps >= 1 but got {steps}")
    overrides = {}
    if route:
        overrides["routes"] = tuple(parse_route(r) for r in route)
    if masking is not None:
        overrides["masking"] = Masking(rate=masking)
    main_config = preset(model, **overrides)
    guide_config = preset(guide_model) if guide_model else None
    options = dict(scale=scale, gs=gs, gw=gw, guide_sparsity=guide_sparsity, interval=interval, eta=eta,
                   momentum=momentum, norm_threshold=norm_threshold)
    methods = _guidance_specs(guidance or ["unguided", "cfg", "sg"], options)
    reports = [cost_report(m, main_config, euler_times(steps), guide_config) for m in methods]
    if as_json:
        typer.echo(json.dumps(reports, indent=2))
        return
    sparse = main_config.sparsity_kind
    detail = {"routing": f"route {', '.join(f'{r.start}..{r.end}' for r in main_config.routes)}",
              "masking": f"masking, decoder {main_config.masking.decoder_depth if main_config.masking else 0} blocks",
              "dense": "dense"}[sparse]
    table = Table(title=f"{main_config.name} ({detail}), {steps} Euler steps, GFLOPs per image [{convention}]")
    for col in ("guidance", "branches/step", "GFLOPs/step", "Δ unguided", "prefix once", "per image"):
        table.add_column(col, justify="left" if col == "guidance" else "right")
    for r in reports:
        plain, shared = r["mean_per_step"]["no_sharing"][convention], r["mean_per_step"]["shared_prefix"][convention]
        delta = r["delta_to_unguided_per_image"]["no_sharing"][convention] / steps
        branches = sum(len(s["branches"]) for s in r["per_step"]) / steps
        costly = [f"{k}={_show(v)}" for k, v in r["params"].items() if k in ("gs", "gw", "guide_sparsity", "interval")
                  and not (k == "interval" and v == [0.0, 1.0])] + (["scale=1"] if r["params"].get("scale") == 1 else [])
        table.add_row(" ".join([r["method"], *costly]), f"{branches:g}", f"{plain:.2f}", f"{delta:+.2f}", f"{shared:.2f}",
                      f"{r['per_image']['no_sharing'][convention]:.1f}")
    Console().print(table)


@app.command(
    epilog="""Examples:

    sgbench speed                       # every method, SiT-XL/2 route 2..24, batch 2, CPU

    sgbench speed --guidance cfg --guidance sg:gs=0.5,gw=0.9 --repeats 5
"""
)
def speed(
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset")] = "SiT-XL/2",
    route: Annotated[str, typer.Option(help="Routed blocks START:END (inclusive)")] = "2:24",
    guidance: Annotated[Optional[list[str]], typer.Option("--guidance", "-g", help="NAME[:k=v,...]; default: every method")] = None,
    batch: Annotated[int, typer.Option(help="Images per step")] = 2,
    repeats: Annotated[int, typer.Option(help="Timed rounds, each running every method once in turn (the median is reported), after one warm-up")] = 3,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's)")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
) -> None:
    """Benchmark (not a test): wall time of one sampling step per guidance method, with random weights,
    next to its GFLOPs [paper], and the time ratio to cfg against the GFLOP ratio; also one forward at
    dense, gamma 0.5 and gamma 0.9. Timings share the CPU with whatever else runs."""
    from rich.console import Console
    from rich.table import Table

    from sgbench.guidance import REGISTRY
    from sgbench.guidance.speed import benchmark
    from sgbench.models.sit import parse_route, preset

    config = preset(model, routes=(parse_route(route),))
    methods = _guidance_specs(guidance or list(REGISTRY), {})
    result = benchmark(config, methods, batch=batch, repeats=repeats, threads=threads, device=device)
    console = Console()
    table = Table(title=f"{config.name} route {route}, batch {batch}, one step, median of {repeats} [{result['device']}]")
    for col in ("guidance", "seconds", "GFLOPs/img", "time / cfg", "GFLOPs / cfg", "unshared GFLOPs / cfg"):
        table.add_column(col, justify="left" if col == "guidance" else "right")
    for row in result["methods"]:
        ratios = [row[k] for k in ("time_vs_cfg", "shared_gflops_vs_cfg", "gflops_vs_cfg")]
        table.add_row(row["label"], f"{row['seconds']:.3f}", f"{row['gflops_shared_prefix']:.2f}",
                      *(f"{r:.3f}" if r is not None else "-" for r in ratios))
    console.print(table)
    for row in result["forwards"]:
        console.print(f"one forward, batch {batch}, {row['what']}: {row['seconds']:.3f} s ({row['gflops']:.2f} GFLOPs/img)")


# === eval & stats ====================================================================================

eval_app = typer.Typer(
    help="Evaluate runs: `sgbench eval fid`, `lpips`, `clip`; `train-classifier` rebuilds the `animal` extractor.",
    no_args_is_help=True, rich_markup_mode="markdown",
)
stats_app = typer.Typer(
    help="Reference statistics in reference_stats/: `sgbench stats build`, `import-adm`, `list`.",
    no_args_is_help=True, rich_markup_mode="markdown",
)
app.add_typer(eval_app, name="eval")
app.add_typer(stats_app, name="stats")

ExtractorOpt = Annotated[str, typer.Option("--extractor", "-e", help="Feature extractor: animal (embedded benchmark) or inception (ADM's InceptionV3)")]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", help="Extractor weights file (inception: else $SGBENCH_INCEPTION_WEIGHTS, else the torch hub cache)")]


def _print_records(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


@eval_app.command(
    "fid",
    epilog="""Examples:

    sgbench eval fid runs/animal/sg --ref animal-all

    sgbench eval fid samples.npz --ref VIRTUAL_imagenet256 --extractor inception --weights weights-inception-2015-12-05-6726825d.pth --kid
""",
)
def eval_fid(
    samples: Annotated[Path, typer.Argument(help="Run directory (with samples.npz) or an ADM npz (arr_0 uint8 NHWC)")],
    ref: Annotated[str, typer.Option("--ref", help="Reference name from reference_stats/manifest.json, or a reference .npz")],
    extractor: ExtractorOpt = "animal",
    weights: WeightsOpt = None,
    kid: Annotated[bool, typer.Option("--kid", help="Also compute KID (polynomial kernel, 100 subsets)")] = False,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch (does not change results)")] = None,
) -> None:
    """FID, sFID (inception), IS, precision and recall (k = 3, ADM's), optional KID, and class accuracy (animal).

    Streams the samples in batches; a run directory gets **metrics.json** (each metric with its
    extractor, weights sha256, reference and sample count).
    """
    from sgbench.metrics import evaluate

    result = evaluate(samples, ref, extractor, weights=weights, kid=kid, batch_size=batch_size)
    m = result["metrics"]
    rows = [(k, f"{v:.4f}") for k, v in m.items() if k not in ("is_std", "kid_std")]
    rows = [(k, f"{m['is']:.3f} ± {m['is_std']:.3f}") if k == "is" else (k, f"{m['kid']:.5f} ± {m['kid_std']:.5f}") if k == "kid" else (k, v) for k, v in rows]
    _print_records(
        f"{result['num_samples']} samples vs '{result['reference']}' ({result['num_reference']} images), extractor {extractor}", rows)


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
    batch_size: int = 64,
) -> None:
    """Mean LPIPS between sample i of two runs (the SG paper's Fig. 7 left); recorded in the run's metrics.json."""
    from sgbench.metrics.evaluate import resolve_samples, write_metrics
    from sgbench.metrics.lpips_score import mean_lpips

    (a, run_dir), (b, _) = resolve_samples(samples), resolve_samples(against)
    out = mean_lpips(a, b, net=net, trunk_weights=trunk_weights, batch_size=batch_size)
    if run_dir is not None:
        write_metrics(run_dir, {"metrics": {"lpips": out["lpips"]}, "extractor": f"lpips-{net}", "weights_sha256": out["weights_sha256"],
                                "reference": str(against), "num_reference": out["num_pairs"], "num_samples": out["num_pairs"],
                                "resolution": None})
    _print_records(f"LPIPS ({net}) over {out['num_pairs']} pairs", [("lpips", f"{out['lpips']:.4f}")])


@eval_app.command(
    "clip",
    epilog="""Examples:

    sgbench eval clip runs/t2i/sg --prompts prompts.txt --model ViT-L-14 --weights open_clip_pytorch_model.bin
""",
)
def eval_clip(
    samples: Annotated[Path, typer.Argument(help="Run directory or npz")],
    prompts: Annotated[Path, typer.Option("--prompts", help="Text file, one prompt per sample in order")],
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Local open_clip weights file")] = None,
    model: Annotated[str, typer.Option(help="open_clip model name")] = "ViT-B-32",
    batch_size: int = 32,
) -> None:
    """CLIP score (100 x cosine, clipped at 0) through open_clip with local weights."""
    from sgbench.metrics.clip_score import clip_score
    from sgbench.metrics.evaluate import resolve_samples

    if not prompts.is_file():
        raise SgbenchError(f"Expected a prompts file (one prompt per line) but {prompts} does not exist")
    npz, _ = resolve_samples(samples)
    out = clip_score(npz, prompts.read_text().splitlines(), model_name=model, weights=weights, batch_size=batch_size)
    _print_records(f"CLIP score ({model}) over {out['num_samples']} samples", [("clip_score", f"{out['clip_score']:.3f}")])


@eval_app.command("train-classifier")
def eval_train_classifier(
    out: Annotated[Optional[Path], typer.Option(help="Output file (default: the shipped sgbench/assets/animal_classifier.safetensors)")] = None,
    epochs: int = 15,
    seed: int = 0,
) -> None:
    """Train the `animal` extractor's classifier on Animal-MNIST `train` and report top-1 on `test` (one CPU thread, a few minutes)."""
    from sgbench.metrics.animal_classifier import DEFAULT_WEIGHTS
    from sgbench.metrics.train_classifier import train_animal_classifier

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
    extractor: ExtractorOpt = "animal",
    weights: WeightsOpt = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the reference exists")] = False,
    batch_size: int = 250,
) -> None:
    """Compute reference statistics (mu, sigma, spatial stats, feature rows for precision/recall) once; cached after."""
    from sgbench.metrics.reference import build_reference, reference_dir

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
    weights: WeightsOpt = None,
    force: bool = False,
    batch_size: int = 100,
) -> None:
    """Import the ADM suite's reference statistics, plus Inception features of its images for precision/recall."""
    from sgbench.metrics.reference import import_adm, reference_dir

    entry, computed = import_adm(path, name=name, weights=weights, force=force, batch_size=batch_size)
    typer.echo(f"{'Imported' if computed else 'Cached, not recomputed:'} {reference_dir() / entry.file}. {entry.notes}")


@stats_app.command("list")
def stats_list() -> None:
    """Reference statistics in the manifest."""
    from rich.console import Console
    from rich.table import Table

    from sgbench.metrics.reference import read_manifest

    table = Table(title="reference_stats/manifest.json")
    for col in ("name", "extractor", "images", "px", "source", "weights sha256"):
        table.add_column(col)
    for e in read_manifest().values():
        table.add_row(e.name, e.extractor, str(e.num_images), str(e.resolution), e.source, e.weights_sha256[:12])
    Console().print(table)



# === bench ===========================================================================================


@app.command(
    epilog="""Examples:

    sgbench bench                       # the embedded benchmark: recipes/bench/animal.yaml

    sgbench bench --quick               # three configurations, 100 samples each (about a minute)

    sgbench bench recipes/bench/animal.yaml --out runs/mybench --format markdown

Every cell is an ordinary run directory (OUT/full/<backbone>/<label>): a rerun skips finished cells
and resumes a killed one; `sgbench compare OUT/full` rebuilds the leaderboard at any time.
"""
)
def bench(
    recipe: Annotated[Optional[Path], typer.Argument(help="Bench recipe (default: recipes/bench/animal.yaml)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Only the recipe's quick subset")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the recipe's)")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv or json")] = "table",
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Also gate against this baseline (exit 1 on regression)")] = None,
) -> None:
    """The main job: sample, evaluate and rank every guidance configuration of a bench recipe."""
    from sgbench import results
    from sgbench.bench import load_bench_recipe, run_bench

    r = load_bench_recipe(recipe)
    if fmt not in results.FORMATS:
        raise SgbenchError(f"Unknown --format '{fmt}'; expected one of {', '.join(results.FORMATS)}")
    dirs = run_bench(r, quick=quick, out=str(out) if out else None, log=lambda m: typer.echo(m, err=True))
    board = results.leaderboard(results.load_runs(dirs, extractor=r.eval.extractor, reference=r.eval.ref), sort="fd")
    root = dirs[0].parent.parent
    for name, f in (("leaderboard.md", "markdown"), ("leaderboard.csv", "csv"), ("leaderboard.json", "json")):
        (root / name).write_text(results.render(board, f))
    typer.echo(results.render(board, fmt), nl=False)
    typer.echo(f"Leaderboard files: {root}/leaderboard.{{md,csv,json}}", err=True)
    if baseline is not None:
        gate = results.check_baseline(board, results.read_baseline(baseline), {})
        typer.echo(gate.report(), err=True)
        if not gate.ok:
            raise typer.Exit(1)


# === compare & sweep =================================================================================


@app.command(
    epilog="""Examples:

    sgbench compare runs/bench                                  # every run directory inside, best FD first

    sgbench compare runs/sg-* runs/cfg-* --sort gflops_step --format markdown --output leaderboard.md

    sgbench compare runs/bench --format csv --ref animal-all --extractor animal

    sgbench compare runs/bench --save-baseline baselines/quick.json --tolerance fid=0.5

    sgbench compare runs/bench --baseline baselines/quick.json --tolerance class_accuracy=0.05   # CI gate

Columns: FD (FID with the inception extractor), sFID, IS, precision, recall, class accuracy; GFLOPs
per image per step (paper convention, Table 2), +attn (with attention matmuls), Δ to the unguided
dense model, GFLOPs per image (whole trajectory), measured images/s. `*` marks the Pareto front of FD
against GFLOPs within a backbone; runs that differ only in seed are one row (mean ± std, n).
Broken or unevaluated runs are listed below the table with the reason. With --baseline the exit code
is 1 when a configuration regressed beyond tolerance (absolute, or relative as N%) or is missing.
"""
)
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders of run directories")],
    sort: Annotated[str, typer.Option("--sort", "-s", help="Column: fd (or fid), sfid, is, precision, recall, class_accuracy, kid, gflops_step, gflops_step_attn, delta_gflops_step, gflops_image, images_per_s")] = "fd",
    reverse: Annotated[bool, typer.Option("--reverse", help="Worst first")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv or json")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the leaderboard to this file instead of stdout")] = None,
    ref: Annotated[Optional[str], typer.Option("--ref", help="Reference whose metrics to show (default: the baseline's, else the one most runs have)")] = None,
    extractor: Annotated[Optional[str], typer.Option("--extractor", "-e", help="Extractor whose metrics to show (default as for --ref)")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Regression gate: compare with this baseline JSON; exit 1 on regression")] = None,
    tolerance: Annotated[Optional[list[str]], typer.Option("--tolerance", "-t", help="METRIC=VALUE (absolute) or METRIC=N% (relative); overrides the baseline's")] = None,
    save_baseline: Annotated[Optional[Path], typer.Option("--save-baseline", help="Write this leaderboard as a baseline JSON (tolerances stored inside)")] = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Also write the figures these runs support (PNG) into this folder")] = None,
) -> None:
    """The leaderboard of run directories: quality next to cost, seeds aggregated, Pareto front marked."""
    from sgbench import results

    if fmt not in results.FORMATS:
        raise SgbenchError(f"Unknown --format '{fmt}'; expected one of {', '.join(results.FORMATS)}")
    tolerances = results.parse_tolerances(tolerance or [])
    base = results.read_baseline(baseline) if baseline else None
    if base is not None:
        extractor, ref = extractor or base.get("extractor"), ref or base.get("reference")
    board = results.leaderboard(results.load_runs(runs, extractor=extractor, reference=ref), sort=sort,
                                descending=None if not reverse else results.COLUMNS[results.column_key(sort)].better < 0)
    text = results.render(board, fmt)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        typer.echo(f"Wrote {output} ({len(board.rows)} configurations, {len(board.problems)} broken or partial runs)", err=True)
    else:
        typer.echo(text, nl=False)
    if plots:
        from sgbench.plots import plot_leaderboard

        for p in plot_leaderboard(board, plots):
            typer.echo(f"Wrote {p}", err=True)
    if save_baseline:
        results.save_baseline(board, save_baseline, tolerances)
        typer.echo(f"Wrote baseline {save_baseline} ({len(board.rows)} configurations)", err=True)
    if base is not None:
        gate = results.check_baseline(board, base, tolerances)
        typer.echo(gate.report(), err=True)
        if not gate.ok:
            raise typer.Exit(1)


@app.command(
    epilog="""Examples:

    sgbench sweep -c CKPT --ref animal-all --grid gs=0,0.25,0.5 --grid gw=0.5,0.7,0.9 --grid scale=1.3,1.5,1.7,1.9

    sgbench sweep -c CKPT --ref animal-all --sparsity 0,0.25,0.5,0.75 --num 200 --steps 20   # Fig. 4 only

    sgbench sweep -c CKPT --ref animal-all --method cfg --grid scale=1,1.5,2,3 --seed 0 --seed 1

    sgbench sweep -c CKPT --ref animal-all --grid gs=0.5 --grid gw=0.9 --grid scale=1.5,2 --set interval=0.2:0.8

One run directory per cell under --out (compare them with `sgbench compare OUT`); cells the method
rejects (sg's gs >= gw) are skipped with the reason, and finished cells are kept, so rerunning the same
command resumes the sweep. Figures (PNG, in OUT/figures): FD over (gs, gw) per scale (Fig. 6),
throughput over (gs, gw) (Fig. A1), FD against sparsity without guidance (Fig. 4: `--sparsity`, i.e.
sg at w = 1, where only the strong branch runs), or FD against the one parameter another method varies.
"""
)
def sweep(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Model checkpoint (.safetensors)")],
    ref: Annotated[str, typer.Option("--ref", help="Reference name from reference_stats/manifest.json, or a reference .npz")],
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="NAME=V1,V2,... a swept parameter of --method (repeat)")] = None,
    method: Annotated[str, typer.Option("--method", "-g", help="Guidance method; `sgbench guidance list` shows all")] = "sg",
    fixed: Annotated[Optional[list[str]], typer.Option("--set", help="NAME=VALUE a parameter held fixed in every cell")] = None,
    sparsity: Annotated[Optional[str], typer.Option(help="G1,G2,... extra cells without guidance at these sparsities (Fig. 4)")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Run seed (repeat for several; compare shows mean ± std)")] = None,
    guide: Annotated[Optional[Path], typer.Option(help="Guide checkpoint for ag / ag+sg")] = None,
    extractor: Annotated[str, typer.Option("--extractor", "-e", help="Feature extractor: animal or inception")] = "animal",
    num: Annotated[int, typer.Option("--num", "-n", help="Samples per cell")] = 100,
    batch_size: Annotated[int, typer.Option(help="Samples per forward batch")] = 100,
    steps: Annotated[int, typer.Option(help="Solver steps")] = 40,
    solver: Annotated[str, typer.Option(help="euler or heun")] = "euler",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the cells' run directories")] = Path("runs/sweep"),
    figures: Annotated[Optional[Path], typer.Option(help="Folder for the PNG figures (default OUT/figures)")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda ...")] = "cpu",
) -> None:
    """Sample and evaluate a grid of guidance parameters, then plot it (the paper's Fig. 4, 6 and A1)."""
    from sgbench import results
    from sgbench.plots import plot_sweep
    from sgbench.sweep import SweepLog, parse_grid, run_sweep

    try:
        levels = [float(g) for g in sparsity.split(",") if g.strip()] if sparsity else []
    except ValueError:
        raise SgbenchError(f"Expected --sparsity as G1,G2,... (e.g. 0,0.25,0.5) but got '{sparsity}'") from None
    log = SweepLog()
    dirs = run_sweep(
        checkpoint, out, ref=ref, extractor=extractor, method=method, grid=parse_grid(grid or []),
        fixed=parse_params(fixed), sparsity=levels, seeds=seed or [0], guide=guide, num=num, batch_size=batch_size,
        steps=steps, solver=solver, device=device, log=log, echo=typer.echo,
    )
    typer.echo(f"{len(log.ran)} cells run, {len(log.resumed)} already finished, {len(log.skipped)} skipped as invalid")
    if not dirs:
        raise SgbenchError("Every cell of the sweep was invalid; see the reasons above")
    board = results.leaderboard(results.load_runs(dirs, extractor=extractor, reference=results.reference_name(ref)))
    typer.echo(results.render(board, "table"), nl=False)
    for p in plot_sweep(dirs, figures or out / "figures", extractor=extractor, reference=results.reference_name(ref)):
        typer.echo(f"Wrote {p}")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

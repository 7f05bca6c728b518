"""Commands that sample and cost guidance: `sample`, `guidance list`, `flops`, `speed`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.cli import (BatchSize, Checkpoint, Device, Guide, GuidanceSpec, GuidanceSpecs, Model, Precision, Routes, Solver, Steps,
                         Vae, app, guidance_methods, guidance_spec, renamed, with_guidance_options)
from sgbench.utils.errors import SgbenchError


def model_config(model: str, route: list[str] | None, masking: float | None):
    """A model preset with the --route / --masking options applied."""
    from sgbench.models.sit import Masking, parse_route, preset

    overrides = {}
    if route:
        overrides["routes"] = tuple(parse_route(r) for r in route)
    if masking is not None:
        overrides["masking"] = Masking(rate=masking)
    return preset(model, **overrides)


# === sample ==========================================================================================


@app.command(
    epilog="""Examples:

    sgbench sample -c sgbench/assets/animal-routed.safetensors -g sg --gs 0.5 --gw 0.9 --scale 1.5

    sgbench sample -c CKPT -g cfg --scale 2 --interval 0.2:0.8 -n 1000 -b 250 -o runs/cfg2

    sgbench sample -c CKPT -g sg:gs=0.5,gw=0.9 --scale 1.5             # a spec, as in flops and speed

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
    guidance: GuidanceSpec = "unguided",
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

    method, params = guidance_spec(guidance, guidance_params or {})
    if images_per_prompt is not None and prompts is None:
        raise SgbenchError("Expected --images-per-prompt only with --prompts FILE (text models); without prompts there is "
                           "nothing to repeat: drop --images-per-prompt")
    images_per_prompt = 1 if images_per_prompt is None else images_per_prompt
    if num is None:
        num = len(read_prompt_texts(prompts)) * images_per_prompt if prompts else 64
    config = SampleConfig(
        checkpoint=str(checkpoint), out=str(out or Path("runs/sample") / f"{method.replace('+', '_')}-seed{seed}"),
        guidance=method, guidance_params=params, guide=str(guide) if guide else None, num=num,
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

    sgbench flops --model SiT-XL/2 --masking 0.5 -g cfg+sg --convention macs --solver heun --format json

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
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="table, or json: the full cost reports (all conventions, every step); "
                                               "default table")] = None,
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="Deprecated spelling of --format json")] = False,
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

    fmt = renamed(fmt, "json" if as_json else None, command="flops", new="--format json", old="--json") or "table"
    if fmt not in ("table", "json"):
        raise SgbenchError(f"Expected --format table or json (flops prints no other) but got '{fmt}'")
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
        main_config = model_config(model or "SiT-XL/2", route, masking)
    guide_config = preset(guide_model) if guide_model else None
    default = ["unguided", "cfg"] + (["sg"] if main_config.sparsity_kind != "dense" else [])  # sg needs a sparse backbone
    methods = guidance_methods(guidance or default, guidance_params or {})
    check_costable(methods, main_config, times, guide_config)
    reports = [cost_report(m, main_config, times, guide_config) for m in methods]
    if fmt == "json":
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
    config = model_config(model, [route], None)
    methods = guidance_methods(guidance or list(REGISTRY), {})
    result = benchmark(config, methods, batch=batch_size, repeats=repeats, threads=threads, device=device)
    title = f"{config.name} route {route}, batch {batch_size}, one step, median of {repeats} [{result['device']}]"
    typer.echo(speed_table(result, title=title), nl=False)

"""The `sgbench` command line: a Typer app only (docs/design.md, "Layers": the command line only parses).

Each command validates how its options combine, calls one library function and prints what it returns;
tables are rendered by sgbench.results.render. A `SgbenchError` becomes a one-line message on stderr and
exit code 2; no traceback for user mistakes. The commands live by group: `models` (train, import,
export model, data), `sampling` (sample, guidance, flops, speed), `evaluation` (eval, stats, geneval,
export/ingest geneval), `results` (bench, compare, sweep) and `tune`.

One vocabulary for every command (docs/design.md, "Command line"): --checkpoint/-c (a model checkpoint),
--guidance/-g NAME[:key=value,...], --num-samples/-n, --batch-size/-b, --out/-o (always an output
FOLDER; a command that writes one file takes it as --file or an argument), --steps, --solver, --seed,
--device, --ref, --extractor/-e, --weights (a scorer's or extractor's weights file), --format/-f (json
included), --vae, --precision, a run directory as an argument, and the guidance parameters --scale,
--gs, --gw, --interval T_LO:T_HI ... generated from the guidance registry, so a new method's parameters
become options everywhere. Older spellings keep working for one release and say so on stderr
(`deprecated`).
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Optional, TypeVar

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


def main() -> None:
    """Console entry point (`sgbench`, `python -m sgbench.cli`)."""
    app()


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
GuidanceSpec = Annotated[str, typer.Option("--guidance", "-g", help="Guidance method NAME or NAME:key=value,... (e.g. sg:gs=0.5,gw=0.9); "
                                           "`sgbench guidance list` shows all")]
GuidanceSpecs = Annotated[Optional[list[str]], typer.Option("--guidance", "-g", help="NAME or NAME:key=value,... (e.g. sg:gs=0.5,gw=0.9); repeatable")]


# === old spellings ===================================================================================

T = TypeVar("T")


def deprecated(command: str, old: str, new: str, why: str = "") -> None:
    """One line on stderr: `sgbench COMMAND OLD` still works in this release; `sgbench COMMAND NEW` is the
    spelling to use, and `why` says what the new spelling makes consistent."""
    typer.secho(f"Deprecated: `sgbench {command} {old}` works in this release but not in the next; use `sgbench {command} {new}`"
                + (f": {why}" if why else ""), fg=typer.colors.YELLOW, err=True)


def renamed(new_value: T | None, old_value: T | None, *, command: str, new: str, old: str, why: str = "") -> T | None:
    """The value of an option now spelled `new`, given either way: the old spelling `old` warns (one
    line, `deprecated`), both at once is an error."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise SgbenchError(f"Expected {new} or its deprecated spelling {old}, not both: drop {old}")
    deprecated(command, old, new, why)
    return old_value


OUT_IS_A_FOLDER = "-o/--out names an output folder in every command"


# === guidance options from the registry ==============================================================


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


def guidance_spec(spec: str, shared: dict[str, str]) -> tuple[str, dict[str, str]]:
    """--guidance NAME[:k=v,...] plus the guidance options (--scale, --gs, ...) -> (name, parameters);
    a parameter given both ways is an error."""
    from sgbench.core.guidance import parse_spec

    name, params = parse_spec(spec)
    for key, value in shared.items():
        if key in params:
            raise SgbenchError(f"Expected {key} once but got it both in --guidance {spec} and as --{key.replace('_', '-')}")
        params[key] = value
    return name, params


def guidance_methods(specs: list[str], shared: dict[str, str]) -> list:
    """Several --guidance specs, each with the shared guidance options -> built methods."""
    from sgbench.core.guidance import build_guidance

    return [build_guidance(name, **params) for name, params in (guidance_spec(s, shared) for s in specs)]


def report_gate(gate) -> None:
    """Print the regression gate's report on stderr; exit 1 when it failed."""
    typer.echo(gate.report(), err=True)
    if not gate.ok:
        raise typer.Exit(1)


# The command groups register themselves on `app` (after everything above exists: they import it).
from sgbench.cli import models, sampling, evaluation, results, tune  # noqa: E402,F401

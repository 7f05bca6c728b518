"""`sgbench bench`: every guidance configuration of a recipe on the same backbones, sampled, evaluated
and put in one leaderboard. The main job.

A bench recipe (recipes/bench/animal.yaml is the embedded benchmark):

    name: animal
    backbones:
      routed: {checkpoint: sgbench/assets/animal-routed.safetensors,
               guides: {early: sgbench/assets/animal-routed-step900.safetensors}}
      masked: {checkpoint: sgbench/assets/animal-masked.safetensors, configs: [CFG, SG]}   # a subset
    configs:
      - {label: CFG, guidance: cfg, scale: 2.0}
      - {label: AG,  guidance: ag,  scale: 2.0, guide: early}   # guide: a name from the backbone's guides
      - {label: SG,  guidance: sg,  gs: 0.5, gw: 0.9, scale: 1.5}
    sampling: {num: 500, batch_size: 250, steps: 40, solver: euler, seed: 0}
    eval: {extractor: animal, ref: animal-all}
    quick: {backbones: [routed], configs: [unguided, CFG, SG], num: 200,   # what --quick keeps
            baseline: baselines/bench-quick.json}                          # and the gate it must pass
    out: runs/bench/animal

Latent backbones (recipes/bench/imagenet-sit-xl2.yaml) add a top-level `vae:` (a directory or a Hugging
Face cache name) that decodes every backbone's samples, and `sampling.precision: bf16` runs the model
forwards under bfloat16 autocast.

Every cell is an ordinary run directory (out/<full|quick>/<backbone>/<label>), so a rerun skips
finished cells and resumes a killed one, and `sgbench compare` reads them like any other run. Paths
in a recipe (checkpoints, guides, baselines) resolve through sgbench.resources: shipped files are
found from any working directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sgbench import resources
from sgbench.config import load_yaml, strict_dataclass
from sgbench.errors import SgbenchError
from sgbench.jobs import Evaluation, check_jobs, sample_and_evaluate
from sgbench.sampling import SampleConfig

DEFAULT_RECIPE = "recipes/bench/animal.yaml"
LEADERBOARD_FILES = {"leaderboard.md": "markdown", "leaderboard.csv": "csv", "leaderboard.json": "json"}


@dataclass(frozen=True)
class Backbone:
    checkpoint: str
    guides: dict = field(default_factory=dict)  # name -> checkpoint
    configs: tuple[str, ...] = ()  # labels of the configs run on this backbone; empty: all of them

    def runs(self, cell: "Cell") -> bool:
        return not self.configs or cell.label in self.configs


@dataclass(frozen=True)
class Sampling:
    num: int = 500
    batch_size: int = 250
    steps: int = 40
    solver: str = "euler"
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # or "bf16" (sgbench.sampling.SampleConfig.precision)


@dataclass(frozen=True)
class Quick:
    backbones: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    num: int = 200
    baseline: str | None = None  # the gate `bench --quick` must pass


@dataclass(frozen=True)
class Cell:
    """One guidance configuration: label, method, its parameters, and the guide it needs (if any)."""

    label: str
    guidance: str
    params: dict
    guide: str | None = None


@dataclass(frozen=True)
class BenchRecipe:
    name: str
    backbones: dict[str, Backbone]
    configs: tuple[Cell, ...]
    sampling: Sampling
    eval: Evaluation
    quick: Quick
    out: str
    baseline: str | None = None  # the gate the full bench must pass, if any
    vae: str | None = None  # decodes latent backbones: a directory or a Hugging Face cache name


def load_bench_recipe(path: str | Path | None = None) -> BenchRecipe:
    path = path or DEFAULT_RECIPE
    raw = load_yaml(path, "bench recipe")
    allowed = {"name", "backbones", "configs", "sampling", "eval", "quick", "out", "baseline", "vae"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SgbenchError(f"Unknown bench recipe section(s) {unknown} in {path}; allowed: {sorted(allowed)}")
    if not raw.get("backbones") or not raw.get("configs"):
        raise SgbenchError(f"Bench recipe {path} needs 'backbones' and 'configs'")
    if not isinstance(raw["backbones"], dict) or not isinstance(raw["configs"], list):
        raise SgbenchError(f"Expected 'backbones' as a mapping and 'configs' as a list in {path}")
    backbones = {name: strict_dataclass(Backbone, b, f"backbones.{name}") for name, b in raw["backbones"].items()}
    cells = []
    for i, c in enumerate(raw["configs"]):
        if not isinstance(c, dict) or "guidance" not in c:
            raise SgbenchError(f"configs[{i}] needs a 'guidance' (a method name)")
        c = dict(c)
        guidance = c.pop("guidance")
        label = str(c.pop("label", guidance))
        guide = c.pop("guide", None)
        cells.append(Cell(label=label, guidance=guidance, params=c, guide=guide))
    labels = [c.label for c in cells]
    if len(set(labels)) != len(labels):
        raise SgbenchError(f"Config labels must be unique; got {labels}")
    recipe = BenchRecipe(
        name=str(raw.get("name", Path(path).stem)),
        backbones=backbones,
        configs=tuple(cells),
        sampling=strict_dataclass(Sampling, raw.get("sampling", {}), "sampling"),
        eval=strict_dataclass(Evaluation, raw.get("eval", {}), "eval"),
        quick=strict_dataclass(Quick, raw.get("quick", {}), "quick"),
        out=str(raw.get("out", f"runs/bench/{Path(path).stem}")),
        baseline=raw.get("baseline"),
        vae=_vae(raw.get("vae")),
    )
    _validate(recipe)
    return recipe


def _vae(value) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SgbenchError(f"Expected 'vae' as a VAE directory or a Hugging Face cache name but got {value!r}")
    return value


def _validate(recipe: BenchRecipe) -> None:
    """Fail on the recipe's own mistakes: unknown methods, bad parameters, missing guides, bad names."""
    from sgbench.guidance import build_guidance
    from sgbench.sampling import PRECISIONS

    if recipe.sampling.precision not in PRECISIONS:
        raise SgbenchError(f"Expected sampling.precision {' or '.join(PRECISIONS)} but got '{recipe.sampling.precision}'")
    labels = [c.label for c in recipe.configs]
    for name, backbone in recipe.backbones.items():
        for label in backbone.configs:
            if label not in labels:
                raise SgbenchError(f"backbones.{name}.configs names '{label}', which is not a config label ({labels})")
        for cell in recipe.configs:
            if not backbone.runs(cell):
                continue
            method = build_guidance(cell.guidance, **cell.params)
            if method.needs_guide and (cell.guide is None or cell.guide not in backbone.guides):
                raise SgbenchError(
                    f"Config '{cell.label}' ({cell.guidance}) needs a guide: set guide: to one of "
                    f"{sorted(backbone.guides) or 'the guides of backbone ' + name + ' (none defined)'}"
                )
            if cell.guide is not None and not method.needs_guide:
                raise SgbenchError(f"Config '{cell.label}' names a guide, but {cell.guidance} runs no guide model")
    for name in recipe.quick.backbones:
        if name not in recipe.backbones:
            raise SgbenchError(f"quick.backbones names '{name}', which is not a backbone ({sorted(recipe.backbones)})")
    for label in recipe.quick.configs:
        if label not in labels:
            raise SgbenchError(f"quick.configs names '{label}', which is not a config label")


def plan(recipe: BenchRecipe, *, quick: bool = False, out: str | None = None) -> list[tuple[str, Cell, SampleConfig]]:
    """The (backbone, cell, sample config) of every run the bench makes, in order."""
    s = recipe.sampling
    backbones = list(recipe.quick.backbones or recipe.backbones) if quick else list(recipe.backbones)
    cells = [c for c in recipe.configs if not quick or not recipe.quick.configs or c.label in recipe.quick.configs]
    num = recipe.quick.num if quick else s.num
    root = Path(out or recipe.out) / ("quick" if quick else "full")
    runs = []
    for bname in backbones:
        b = recipe.backbones[bname]
        for cell in cells:
            if not b.runs(cell):
                continue
            guide = str(resources.resolve(b.guides[cell.guide])) if cell.guide else None
            config = SampleConfig(
                checkpoint=str(resources.resolve(b.checkpoint)), out=str(root / bname / cell.label.replace("+", "_").replace("/", "_")),
                guidance=cell.guidance, guidance_params=dict(cell.params), guide=guide, num=num,
                batch_size=min(s.batch_size, num), steps=s.steps, solver=s.solver, seed=s.seed, device=s.device,
                vae=recipe.vae, precision=s.precision,
            )
            runs.append((bname, cell, config))
    return runs


def baseline_of(recipe: BenchRecipe, *, quick: bool) -> Path | None:
    """The baseline the recipe gates this mode against, resolved, or None."""
    path = recipe.quick.baseline if quick else recipe.baseline
    return resources.resolve(path) if path else None


def run_bench(recipe: BenchRecipe, *, quick: bool = False, out: str | None = None, progress: bool = True, log=print):
    """Sample and evaluate every cell (keeping finished ones), write the leaderboard files beside the
    runs; returns the Leaderboard."""
    from sgbench import results

    runs = plan(recipe, quick=quick, out=out)
    check_jobs([config for _, _, config in runs], recipe.eval)
    t0 = time.time()
    for k, (bname, cell, config) in enumerate(runs, 1):
        head = f"[{k}/{len(runs)}] {bname} · {cell.label}"
        log(f"{head}: {cell.guidance} {cell.params or ''}")
        done = sample_and_evaluate(config, recipe.eval, progress=progress)
        if done == "kept":
            log(f"{head}: done already, kept")
    log(f"bench {recipe.name}{' --quick' if quick else ''}: {len(runs)} runs in {time.time() - t0:.0f} s")
    dirs = [config.out for _, _, config in runs]
    board = results.leaderboard(results.load_runs(dirs, extractor=recipe.eval.extractor, reference=recipe.eval.ref), sort="fd")
    root = Path(out or recipe.out) / ("quick" if quick else "full")
    for name, fmt in LEADERBOARD_FILES.items():
        (root / name).write_text(results.render(board, fmt))
    return board

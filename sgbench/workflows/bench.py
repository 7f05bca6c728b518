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
in a recipe (checkpoints, guides, baselines) resolve through sgbench.utils.resources: shipped files are
found from any working directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from sgbench.utils import resources
from sgbench.workflows.recipes import load_yaml, strict_dataclass
from sgbench.utils.errors import SgbenchError
from sgbench.results.pairing import pair_board
from sgbench.workflows.jobs import Evaluation, check_jobs, sample_and_evaluate
from sgbench.sampling import SampleConfig, read_prompt_texts
from sgbench.utils.files import atomic_write_text

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
    prompts: str | None = None  # text backbones: GenEval metadata (every prompt, or a stratified subset)
    images_per_prompt: int = 1
    prompts_per_task: int | None = None  # the first N prompts of each GenEval task; None: every prompt


@dataclass(frozen=True)
class Quick:
    backbones: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    num: int = 200
    baseline: str | None = None  # the gate `bench --quick` must pass
    prompts_per_task: int | None = None  # text backbones: overrides sampling's
    images_per_prompt: int | None = None


@dataclass(frozen=True)
class Full:
    """`bench --full`: a text benchmark's whole protocol (GenEval: every prompt, 4 images each)."""

    prompts_per_task: int | None = None
    images_per_prompt: int = 4


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
    full: Full | None = None  # text benchmarks: the whole protocol (`--full`)
    vae: str | None = None  # decodes latent backbones: a directory or a Hugging Face cache name


def recipe_path(name_or_path: str | Path | None) -> Path:
    """A bench recipe's file: a path, or a shipped recipe's name (`animal`, `t2i`: recipes/bench/NAME.yaml).
    Only an existing file shadows a shipped name: a folder `t2i` in the working directory (a bench's
    output, say) does not."""
    if name_or_path is None:
        return Path(DEFAULT_RECIPE)
    p = Path(name_or_path)
    if p.suffix or len(p.parts) > 1 or p.is_file():
        return p
    shipped = resources.recipes_dir() / "bench" / f"{p}.yaml"
    if not shipped.is_file():
        names = sorted(q.stem for q in (resources.recipes_dir() / "bench").glob("*.yaml"))
        raise SgbenchError(f"Expected a bench recipe file or a shipped recipe name ({', '.join(names)}) but got '{name_or_path}'")
    return shipped


def load_bench_recipe(path: str | Path | None = None) -> BenchRecipe:
    path = recipe_path(path)
    raw = load_yaml(path, "bench recipe")
    allowed = {"name", "backbones", "configs", "sampling", "eval", "quick", "out", "baseline", "vae", "full",
               "tune"}  # tune: read by `sgbench tune` (sgbench.workflows.tune), not by the bench
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
        full=strict_dataclass(Full, raw["full"], "full") if "full" in raw else None,
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
    from sgbench.core.guidance import build_guidance
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


MODES = ("quick", "full", "protocol")  # --quick, the default, --full (a text benchmark's whole protocol)


def mode_of(quick: bool, full: bool) -> str:
    if quick and full:
        raise SgbenchError("Expected --quick or --full, not both")
    return "quick" if quick else "protocol" if full else "full"


def subset_prompts(source: Path, per_task: int | None, out: Path) -> Path:
    """The first `per_task` prompts of each GenEval task of `source`, in its order, as a file in `out`
    (the whole file when per_task is None): a stratified subset every configuration shares."""
    from sgbench.text.prompts import read_prompts

    if per_task is None:
        return source
    taken: dict[str, int] = {}
    lines = []
    for record in read_prompts(source):
        tag = record.get("tag", "")
        if taken.get(tag, 0) < per_task:
            taken[tag] = taken.get(tag, 0) + 1
            lines.append(json.dumps(record))
    path = out / f"prompts-{per_task}-per-task.jsonl"
    text = "".join(line + "\n" for line in lines)
    if not (path.is_file() and path.read_text() == text):
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return path


def plan(recipe: BenchRecipe, *, quick: bool = False, full: bool = False, out: str | None = None) -> list[tuple[str, Cell, SampleConfig]]:
    """The (backbone, cell, sample config) of every run the bench makes, in order."""
    s = recipe.sampling
    mode = mode_of(quick, full)
    if full and recipe.full is None:
        raise SgbenchError(f"Bench recipe {recipe.name} has no full protocol (a `full:` section); run it without --full")
    backbones = list(recipe.quick.backbones or recipe.backbones) if quick else list(recipe.backbones)
    cells = [c for c in recipe.configs if not quick or not recipe.quick.configs or c.label in recipe.quick.configs]
    num = recipe.quick.num if quick else s.num
    root = Path(out or recipe.out) / mode
    prompts, images_per_prompt = None, s.images_per_prompt
    if s.prompts is not None:
        per_task = s.prompts_per_task
        if quick:
            per_task = recipe.quick.prompts_per_task or per_task
            images_per_prompt = recipe.quick.images_per_prompt or images_per_prompt
        elif full:
            per_task, images_per_prompt = recipe.full.prompts_per_task, recipe.full.images_per_prompt
        prompts = subset_prompts(resources.resolve(s.prompts), per_task, root)
        num = len(read_prompt_texts(prompts)) * images_per_prompt
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
                vae=recipe.vae, precision=s.precision, prompts=str(prompts) if prompts else None,
                images_per_prompt=images_per_prompt,
            )
            runs.append((bname, cell, config))
    return runs


def baseline_of(recipe: BenchRecipe, *, quick: bool, full: bool = False, given: str | Path | None = None) -> Path | None:
    """The baseline this mode is gated against (`given`, i.e. --baseline, else the recipe's), or None.
    It is read here, so a missing or broken baseline fails before any sampling, not after it."""
    from sgbench.results import read_baseline

    path = recipe.quick.baseline if quick else None if full else recipe.baseline
    path = Path(given) if given is not None else resources.resolve(path) if path else None
    if path is not None:
        read_baseline(path)
    return path


def run_bench(recipe: BenchRecipe, *, quick: bool = False, full: bool = False, out: str | None = None,
              progress: bool = True, log=print):
    """Sample and evaluate every cell (keeping finished ones), write the leaderboard files beside the
    runs; returns the Leaderboard (class runs: FD; text runs: GenEval)."""
    from sgbench import results

    runs = plan(recipe, quick=quick, full=full, out=out)
    check_jobs([config for _, _, config in runs], recipe.eval)
    t0 = time.time()
    for k, (bname, cell, config) in enumerate(runs, 1):
        head = f"[{k}/{len(runs)}] {bname} · {cell.label}"
        log(f"{head}: {cell.guidance} {cell.params or ''}")
        done = sample_and_evaluate(config, recipe.eval, progress=progress)
        if done == "kept":
            log(f"{head}: done already, kept")
    mode = mode_of(quick, full)
    log(f"bench {recipe.name} ({mode}): {len(runs)} runs in {time.time() - t0:.0f} s")
    dirs = [config.out for _, _, config in runs]
    kind = "t2i" if recipe.sampling.prompts else "class"
    board = results.leaderboard(results.load_runs(dirs, extractor=recipe.eval.extractor, reference=recipe.eval.ref), kind=kind)
    for note in pair_board(board):  # paired differences to the best row, and Holm tiers, as compare shows them
        log(note)
    root = Path(out or recipe.out) / mode
    for name, fmt in LEADERBOARD_FILES.items():
        atomic_write_text(root / name, results.render(board, fmt))
    return board

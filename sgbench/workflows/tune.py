"""`sgbench tune`: each method of a bench recipe at its own best setting, found with an equal budget per
method, then scored on the bench's held-out seed (docs/design.md, "Tuning").

    plan = plan_tuning(load_bench_recipe("animal"), settings=TuneSettings(), quick=True, budgets=[2.5])
    report = run_tuning(plan)          # rungs of successive halving, then the tuned bench

For every (backbone, method) of the recipe (its quick subset with --quick): the search grid is the
product of each parameter's search values (field metadata in sgbench.core.guidance, overridden by the
recipe's `tune.space.<method>`; ag / ag+sg also search the backbone's guides), settings that break a
method's own rules (sg's gs < gw) left out. A budget (`--max-gflops-image X`) keeps the settings whose
analytic GFLOPs per image (core.flops.cost_report, as executed) are within X. K candidates (a seeded
subset of the grid; a smaller grid repeated with fresh tuning seeds) enter successive halving
(Jamieson & Talwalkar 2016): rung r scores its candidates on `samples * eta^r` samples (text boards:
`eta^r` images per prompt) and keeps the best 1/eta, until one is left. Every tuning run uses seeds
`seed + seed_offset + replicate`, never the bench's seed; the winners are then run as an ordinary bench
recipe (TUNE_DIR/tuned.yaml) on the bench's seed and sample count.

A recipe's optional section (every key optional; shown with the defaults):

    tune:
      candidates: 8          # K, the same for every method
      eta: 2                 # keep the best 1/eta of each rung
      samples: 50            # class boards: samples per candidate at rung 0
      prompts_per_task: 2    # text boards: GenEval prompts per task at every rung
      seed_offset: 1000      # tuning seeds: sampling.seed + seed_offset + replicate
      quick: {candidates: 4, samples: 20, prompts_per_task: 1}   # what --quick changes
      space: {sg: {scale: [1.5, 2.0], gs: [0.0, 0.5], gw: [0.9]}, ag: {guide: [step900]}}
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from sgbench.utils import resources
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_write_json, atomic_write_text
from sgbench.workflows.bench import BenchRecipe, Cell, load_bench_recipe, recipe_path, subset_prompts
from sgbench.workflows.recipes import load_yaml
from sgbench.workflows.jobs import check_jobs, sample_and_evaluate
from sgbench.sampling import SampleConfig, read_prompt_texts

QUICK_DEFAULTS = {"candidates": 4, "samples": 20, "prompts_per_task": 1}


@dataclass(frozen=True)
class TuneSettings:
    """The `tune:` section of a bench recipe (module docstring)."""

    candidates: int = 8
    eta: int = 2
    samples: int = 50
    prompts_per_task: int = 2
    seed_offset: int = 1000
    space: dict = field(default_factory=dict)  # method -> parameter -> values
    quick: dict = field(default_factory=dict)


def read_settings(raw: dict | None, *, quick: bool) -> TuneSettings:
    """The recipe's `tune:` section, with --quick's changes applied; every mistake is a one-line error."""
    if raw is not None and not isinstance(raw, dict):
        raise SgbenchError(f"Expected the recipe's tune section as a mapping (candidates, eta, samples, ...) but got {raw!r}")
    raw = dict(raw or {})
    allowed = [f.name for f in dataclasses.fields(TuneSettings)]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise SgbenchError(f"Unknown key(s) {unknown} in the recipe's tune section; allowed: {allowed}")
    quick_raw = raw.get("quick") or {}
    if not isinstance(quick_raw, dict) or set(quick_raw) - set(QUICK_DEFAULTS):
        raise SgbenchError(f"Expected tune.quick as a mapping of {sorted(QUICK_DEFAULTS)} but got {quick_raw!r}")
    if quick:
        raw.update({**QUICK_DEFAULTS, **quick_raw})
    settings = TuneSettings(**raw)
    for name, low in (("candidates", 1), ("eta", 2), ("samples", 10), ("prompts_per_task", 1), ("seed_offset", 1)):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SgbenchError(f"Expected tune.{name} to be an integer >= {low} but got {value!r}")
    if not isinstance(settings.space, dict) or not all(isinstance(v, dict) for v in settings.space.values()):
        raise SgbenchError("Expected tune.space as a mapping METHOD -> {PARAMETER: [VALUES]}, e.g. {sg: {scale: [1.5, 2.0]}}")
    return settings


def rung_sizes(candidates: int, eta: int) -> list[int]:
    """Candidates scored at each rung of successive halving: K, K // eta, ... while more than one is left
    (the last rung's best is the winner). K = 8, eta = 2: [8, 4, 2]; K = 1: [] (nothing to choose)."""
    sizes, n = [], candidates
    while n > 1:
        sizes.append(n)
        n = max(1, n // eta)
    return sizes


def tuning_seed(recipe: BenchRecipe, settings: TuneSettings, replicate: int) -> int:
    """The seed of a tuning run; the bench's own seed (the reported numbers) is never one of them."""
    return recipe.sampling.seed + settings.seed_offset + replicate


# ----------------------------------------------------------------------------------------------------
# Search spaces


def search_space(method: str, cell: Cell, overrides: dict, guides: dict) -> dict[str, list]:
    """Parameter -> values searched for `method`: the recipe's override, else the field's declared search
    values, else the recipe config's value (or the default). Methods with a guide also search `guide`
    (default: every guide of the backbone)."""
    from sgbench.core.guidance.base import REGISTRY, search_values

    cls = REGISTRY[method]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    takes = sorted(fields) + (["guide"] if cls.needs_guide else [])
    unknown = sorted(set(overrides) - set(takes))
    if unknown:
        raise SgbenchError(f"tune.space.{method} names {unknown}, which {method} does not take; it takes {takes or 'nothing'}")
    space = {}
    for name, f in fields.items():
        if name in overrides:
            values = overrides[name]
        elif f.metadata.get("search"):
            values = search_values(f)
        else:
            values = [cell.params.get(name, f.default)]
        if not isinstance(values, (list, tuple)) or not values:
            raise SgbenchError(f"Expected tune.space.{method}.{name} as a non-empty list of values but got {values!r}")
        space[name] = list(values)
    if cls.needs_guide:
        space["guide"] = list(overrides.get("guide", sorted(guides)))
        bad = [g for g in space["guide"] if g not in guides]
        if bad or not space["guide"]:
            raise SgbenchError(f"tune.space.{method}.guide names {bad or 'no guide'}; the backbone's guides are {sorted(guides)}")
    return space


def grid(method: str, space: dict[str, list]) -> list[dict]:
    """Every valid setting of the space ({parameter: canonical value, 'guide': name}), in product order,
    duplicates (2 and 2.0) once. A value that fits no valid setting is an error quoting the method's rule."""
    from sgbench.core.guidance import build_guidance

    names = list(space)
    settings, seen, used, first_error = [], set(), {n: set() for n in names}, {}
    for combo in itertools.product(*(space[n] for n in names)):
        chosen = dict(zip(names, combo))
        guide = chosen.pop("guide", None)
        try:
            params = build_guidance(method, **chosen).params
        except SgbenchError as e:
            for n, v in zip(names, combo):
                first_error.setdefault((n, repr(v)), str(e))
            continue
        for n, v in zip(names, combo):
            used[n].add(repr(v))
        setting = {**params, **({"guide": guide} if guide is not None else {})}
        key = json.dumps(setting, sort_keys=True)
        if key not in seen:
            seen.add(key)
            settings.append(setting)
    if not settings:
        raise SgbenchError(f"tune.space.{method} has no valid setting: {next(iter(first_error.values()))}")
    for n in names:
        for v in space[n]:
            if repr(v) not in used[n]:
                raise SgbenchError(f"tune.space.{method}.{n} value {v!r} fits no valid setting: {first_error[(n, repr(v))]}")
    return settings


# ----------------------------------------------------------------------------------------------------
# The plan


@dataclass
class Candidate:
    setting: dict          # canonical parameters, plus 'guide' for methods with one
    replicate: int         # tuning seed = seed + seed_offset + replicate
    gflops_image: float
    scores: list = field(default_factory=list)  # one per rung it was scored at
    runs: list = field(default_factory=list)


@dataclass
class Unit:
    """One method on one backbone within one budget."""

    backbone: str
    method: str
    label: str
    grid_size: int
    candidates: list[Candidate]
    chosen: Candidate | None = None


@dataclass
class TunePlan:
    recipe: BenchRecipe
    settings: TuneSettings
    quick: bool
    out: Path
    budgets: dict[str, float | None]   # name -> max GFLOPs per image (None: no limit)
    units: dict[str, list[Unit]]       # budget name -> its units


def budget_name(limit: float | None) -> str:
    return "all" if limit is None else f"max{limit:g}gflops"


def gflops_image(method: str, setting: dict, main_config, guide_config, times) -> float:
    """Analytic GFLOPs per image as executed (paper convention, shared prefix): the board's GFLOPs/img."""
    from sgbench.core.flops import cost_report
    from sgbench.core.guidance import build_guidance

    params = {k: v for k, v in setting.items() if k != "guide"}
    report = cost_report(build_guidance(method, **params), main_config, times, guide_config)
    return report["per_image"]["shared_prefix"]["paper"]


def choose_candidates(settings: list[dict], k: int, seed: int) -> list[tuple[dict, int]]:
    """K (setting, replicate) pairs: a seeded subset of a larger grid (in grid order), or a smaller grid
    repeated, each repetition a fresh replicate (its own tuning seed), so every method spends K slots."""
    if len(settings) >= k:
        picked = sorted(random.Random(seed).sample(range(len(settings)), k))
        return [(settings[i], 0) for i in picked]
    return [(settings[i % len(settings)], i // len(settings)) for i in range(k)]


def plan_tuning(recipe: BenchRecipe, *, settings: TuneSettings, quick: bool = False, out: str | Path | None = None,
                budgets: list[float | None] | None = None) -> TunePlan:
    """Every (budget, backbone, method) to tune with its K candidates; checks everything before any sampling."""
    from sgbench.core.flow import eval_times
    from sgbench.core.guidance import REGISTRY
    from sgbench.models.checkpoint import read_config

    for limit in budgets or []:
        if limit is None or not limit > 0:
            raise SgbenchError(f"Expected --max-gflops-image to be a positive number of GFLOPs per image but got {limit}")
    # The unrestricted tune always runs too: each budget's board is read against it (and the Pareto figure
    # needs it); candidates shared between budgets are one cached run.
    budgets = [None] + sorted(set(budgets or []))
    unknown = sorted(set(settings.space) - set(REGISTRY))
    if unknown:
        raise SgbenchError(f"tune.space names {unknown}, which are not guidance methods; available: {', '.join(REGISTRY)}")
    backbones = list(recipe.quick.backbones or recipe.backbones) if quick else list(recipe.backbones)
    cells = [c for c in recipe.configs if not quick or not recipe.quick.configs or c.label in recipe.quick.configs]
    times = eval_times(recipe.sampling.steps, recipe.sampling.solver)
    root = Path(out or Path(recipe.out) / "tune")
    units: dict[str, list[Unit]] = {budget_name(b): [] for b in budgets}
    for bname in backbones:
        backbone = recipe.backbones[bname]
        main = read_config(resources.resolve(backbone.checkpoint))
        guides = {g: read_config(resources.resolve(p)) for g, p in backbone.guides.items()}
        first: dict[str, Cell] = {}
        for cell in cells:  # a method tuned once per backbone, from its first config there
            if backbone.runs(cell):
                first.setdefault(cell.guidance, cell)
        for method, cell in first.items():
            every = grid(method, search_space(method, cell, settings.space.get(method, {}), backbone.guides))
            costs: dict[str, float] = {}  # computed when needed: a budget prices the whole grid, else the candidates

            def cost(setting: dict) -> float:
                key = json.dumps(setting, sort_keys=True)
                if key not in costs:
                    costs[key] = gflops_image(method, setting, main, guides.get(setting.get("guide")), times)
                return costs[key]

            for limit in budgets:
                kept = [s for s in every if limit is None or cost(s) <= limit]
                label = method if len(backbones) == 1 else f"{method}@{bname}"
                pairs = choose_candidates(kept, settings.candidates, tuning_seed(recipe, settings, 0)) if len(kept) > 1 else [(s, 0) for s in kept]
                units[budget_name(limit)].append(Unit(bname, method, label, len(kept), [Candidate(s, r, cost(s)) for s, r in pairs]))
    plan = TunePlan(recipe, settings, quick, root, {budget_name(b): b for b in budgets}, units)
    seeds = tuning_seeds(plan)
    if recipe.sampling.seed in seeds:
        raise SgbenchError(f"Expected tuning seeds disjoint from the bench's seed {recipe.sampling.seed} but tune.seed_offset "
                           f"{settings.seed_offset} makes them {sorted(seeds)}: choose seed_offset >= 1")
    return plan


def tuning_seeds(plan: TunePlan) -> list[int]:
    """Every seed a tuning run of the plan uses."""
    replicates = {c.replicate for units in plan.units.values() for u in units for c in u.candidates}
    return sorted({tuning_seed(plan.recipe, plan.settings, r) for r in replicates})


def samples_per_method(plan: TunePlan) -> int:
    """Tuning samples every tuned method spends (class boards): sum over rungs of candidates x samples."""
    eta = plan.settings.eta
    return sum(n * plan.settings.samples * eta ** r for r, n in enumerate(rung_sizes(plan.settings.candidates, eta)))


# ----------------------------------------------------------------------------------------------------
# Running


def _config(plan: TunePlan, unit: Unit, setting: dict, *, seed: int, rung: int) -> SampleConfig:
    """The tuning run of one candidate at one rung: a resumable run directory named by what it samples."""
    recipe, s = plan.recipe, plan.recipe.sampling
    backbone = recipe.backbones[unit.backbone]
    params = {k: v for k, v in setting.items() if k != "guide"}
    guide = str(resources.resolve(backbone.guides[setting["guide"]])) if "guide" in setting else None
    prompts, images_per_prompt, num = None, 1, plan.settings.samples * plan.settings.eta ** rung
    if s.prompts is not None:  # text boards: a fixed stratified prompt subset, eta^r images per prompt
        prompts = subset_prompts(resources.resolve(s.prompts), plan.settings.prompts_per_task, plan.out)
        images_per_prompt = plan.settings.eta ** rung
        num = len(read_prompt_texts(prompts)) * images_per_prompt
    digest = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:10]
    size = f"p{num // images_per_prompt}x{images_per_prompt}" if prompts else f"n{num}"  # text: prompts x images, never only their product
    out = plan.out / "runs" / unit.backbone / unit.method.replace("+", "_") / f"{digest}-seed{seed}-{size}"
    return SampleConfig(checkpoint=str(resources.resolve(backbone.checkpoint)), out=str(out), guidance=unit.method,
                        guidance_params=params, guide=guide, num=num, batch_size=min(s.batch_size, num), steps=s.steps,
                        solver=s.solver, seed=seed, device=s.device, vae=recipe.vae, precision=s.precision,
                        prompts=str(prompts) if prompts else None, images_per_prompt=images_per_prompt)


def _score(plan: TunePlan, run_dir: str) -> float | None:
    """The board's primary metric of one run (FD on class boards, GenEval on text boards)."""
    from sgbench import results

    kind = "t2i" if plan.recipe.sampling.prompts else "class"
    board = results.leaderboard(results.load_runs([run_dir], extractor=plan.recipe.eval.extractor,
                                                  reference=plan.recipe.eval.ref), kind=kind)
    return board.rows[0].mean[board.quality] if board.rows else None


def halve(plan: TunePlan, unit: Unit, *, progress: bool, log) -> Candidate:
    """Successive halving over the unit's candidates; returns the winner (the only candidate if one)."""
    from sgbench.results import COLUMNS, PRIMARY

    better = COLUMNS[PRIMARY["t2i" if plan.recipe.sampling.prompts else "class"]].better
    alive = list(unit.candidates)
    for rung, size in enumerate(rung_sizes(len(alive), plan.settings.eta)):
        for k, cand in enumerate(alive, 1):
            config = _config(plan, unit, cand.setting, seed=tuning_seed(plan.recipe, plan.settings, cand.replicate), rung=rung)
            done = sample_and_evaluate(config, plan.recipe.eval, progress=progress)
            score = _score(plan, config.out)
            cand.scores.append(score)
            cand.runs.append(config.out)
            shown = "no score" if score is None else f"{score:.4g}"
            log(f"  rung {rung} [{k}/{size}] {unit.backbone} · {unit.method} {cand.setting}: {shown}{' (kept)' if done == 'kept' else ''}")
        ranked = sorted(alive, key=lambda c: float("inf") if c.scores[-1] is None else -better * c.scores[-1])  # stable: grid order breaks ties
        alive = ranked[:max(1, size // plan.settings.eta)]
    return alive[0]


def tuned_recipe(plan: TunePlan, budget: str) -> dict:
    """The tuned bench recipe of one budget (YAML-ready): the winners on the bench's seed and sizes."""
    recipe = plan.recipe
    units = [u for u in plan.units[budget] if u.chosen is not None]
    used = sorted({u.backbone for u in units}, key=list(recipe.backbones).index)
    backbones = {}
    for b in used:
        bb = recipe.backbones[b]
        backbones[b] = {"checkpoint": str(resources.resolve(bb.checkpoint)), "configs": [u.label for u in units if u.backbone == b]}
        if bb.guides:
            backbones[b]["guides"] = {g: str(resources.resolve(p)) for g, p in bb.guides.items()}
    configs = []
    for u in units:
        params = {k: v for k, v in u.chosen.setting.items() if k != "guide"}
        configs.append({"label": u.label, "guidance": u.method, **params,
                        **({"guide": u.chosen.setting["guide"]} if "guide" in u.chosen.setting else {})})
    sampling = dataclasses.asdict(recipe.sampling)
    if sampling["prompts"]:
        sampling["prompts"] = str(resources.resolve(sampling["prompts"]))
    quick = {k: v for k, v in dataclasses.asdict(recipe.quick).items() if k in ("num", "prompts_per_task", "images_per_prompt")}
    raw = {"name": f"{recipe.name}-tuned-{budget}", "backbones": backbones, "configs": configs, "sampling": sampling,
           "eval": dataclasses.asdict(recipe.eval), "quick": {**quick, "backbones": used}, "out": str(plan.out / budget)}
    if recipe.full is not None:
        raw["full"] = dataclasses.asdict(recipe.full)
    if recipe.vae is not None:
        raw["vae"] = recipe.vae
    return raw


def tuned_recipe_path(plan: TunePlan, budget: str) -> Path:
    return plan.out / ("tuned.yaml" if budget == "all" else f"tuned-{budget}.yaml")


def run_tuning(plan: TunePlan, *, progress: bool = True, log=print) -> dict:
    """Halve every unit, score the winners through the bench on its held-out seed, write tune.json, the
    tuned recipes, their leaderboards and the Pareto figure; returns {'report': tune.json's dict, 'boards': {budget: board}}."""
    import yaml

    from sgbench.results.plots import plot_pareto
    from sgbench.workflows.bench import run_bench

    t0 = time.time()
    configs = [_config(plan, u, c.setting, seed=tuning_seed(plan.recipe, plan.settings, c.replicate), rung=0)
               for units in plan.units.values() for u in units for c in u.candidates]
    check_jobs(configs, plan.recipe.eval)
    boards = {}
    for budget, units in plan.units.items():
        log(f"tune {plan.recipe.name}: budget {budget}")
        for unit in units:
            if not unit.candidates:
                log(f"  {unit.backbone} · {unit.method}: no setting within {plan.budgets[budget]:g} GFLOPs/image, left out")
                continue
            unit.chosen = halve(plan, unit, progress=progress, log=log)
            log(f"  {unit.backbone} · {unit.method}: chose {unit.chosen.setting}")
        if not any(u.chosen for u in units):
            raise SgbenchError(f"No method has a setting within budget {budget}: raise --max-gflops-image")
        path = tuned_recipe_path(plan, budget)
        plan.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "# Written by `sgbench tune`: each method at its tuned setting (tune.json says how it was chosen).\n"
                          + yaml.safe_dump(tuned_recipe(plan, budget), sort_keys=False))
        boards[budget] = run_bench(load_bench_recipe(path), quick=plan.quick, progress=progress, log=log)
    figure = plot_pareto(boards, plan.out / "pareto.png")
    report = tune_report(plan, boards, wall_s=time.time() - t0, figure=figure)
    atomic_write_json(plan.out / "tune.json", report)
    return {"report": report, "boards": boards}


def tune_report(plan: TunePlan, boards: dict, *, wall_s: float, figure: Path | None) -> dict:
    """tune.json: seeds, budgets, every rung's scores, each method's chosen setting, the wall time."""
    mode = "quick" if plan.quick else "full"

    def unit_json(u: Unit) -> dict:
        rungs = []
        for r, n in enumerate(rung_sizes(len(u.candidates), plan.settings.eta)):
            scored = [c for c in u.candidates if len(c.scores) > r]
            rungs.append({"rung": r, "candidates": n, "runs": [
                {"setting": c.setting, "seed": tuning_seed(plan.recipe, plan.settings, c.replicate), "score": c.scores[r],
                 "gflops_image": c.gflops_image, "run": c.runs[r]} for c in scored]})
        chosen = None if u.chosen is None else {"setting": u.chosen.setting, "gflops_image": u.chosen.gflops_image}
        return {"backbone": u.backbone, "method": u.method, "label": u.label, "grid_size": u.grid_size,
                "candidates": len(u.candidates), "rungs": rungs, "chosen": chosen}

    return {
        "recipe": plan.recipe.name, "mode": mode, "scoring_seed": plan.recipe.sampling.seed, "tuning_seeds": tuning_seeds(plan),
        "settings": {k: v for k, v in dataclasses.asdict(plan.settings).items() if k != "quick"},
        "samples_per_method": None if plan.recipe.sampling.prompts else samples_per_method(plan),
        "budgets": [{"name": b, "max_gflops_image": plan.budgets[b], "units": [unit_json(u) for u in plan.units[b]],
                     "tuned_recipe": str(tuned_recipe_path(plan, b)), "leaderboard": str(plan.out / b / mode / "leaderboard.md")}
                    for b in plan.units],
        "pareto_figure": str(figure) if figure else None,
        "wall_s": round(wall_s, 1),
    }


def load_tuning(recipe: str | None, *, quick: bool = False, out: str | Path | None = None,
                budgets: list[float] | None = None) -> TunePlan:
    """The plan of `sgbench tune RECIPE`: the bench recipe and its `tune:` section."""
    path = recipe_path(recipe)
    bench = load_bench_recipe(path)
    settings = read_settings(load_yaml(path, "bench recipe").get("tune"), quick=quick)
    return plan_tuning(bench, settings=settings, quick=quick, out=out, budgets=budgets)

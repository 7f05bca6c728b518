"""Run directories -> records: one evaluated configuration each, or the problem that keeps it out.

Pure bookkeeping over files (no model, no feature pass): a run is read through sgbench.runs.rundir,
never re-run; which of its metrics a row shows is each metric's declaration (sgbench.evaluation.metrics).
Every directory given ends up either as a record or as a Problem with the reason (no run.json, sampling
unfinished, not evaluated, evaluated against another reference, metrics of other samples ...);
nothing is dropped silently.

Costs are GFLOPs per image in the paper's convention (linear/conv MACs, Table 2). "per step" is per
solver evaluation, averaged over the trajectory: `gflops_step` counts one forward per branch as the
paper's Table 2 does (SG 0.5/0.9 on SiT-XL/2: 97.67), `gflops_step_run` what sgbench executed (the
blocks before the first route computed once for both SG branches: 89.48).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.metrics import BOARDS, REGISTRY, Metric, board_metrics
from sgbench.runs.rundir import RunDir, RunInfo, State, expand

# ----------------------------------------------------------------------------------------------------
# Columns: the metrics of the registry (sgbench.evaluation.metrics, docs/design.md "Metrics"), then the costs


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    better: int  # -1: lower is better, +1: higher is better
    fmt: str  # fixed decimals for metrics, significant digits for costs (tiny to XL models)
    help: str
    tolerance: float | str | None = None  # the gate's default: absolute, or relative as 'N%'; None: not gated


def _metric_column(metric: Metric) -> Column:
    return Column(metric.key, metric.header, +1 if metric.better == "higher" else -1, metric.fmt, metric.help, metric.tolerance)


METRIC_COLUMNS = tuple(_metric_column(m) for m in REGISTRY.values())
COST_COLUMNS = (
    Column("gflops_step", "GFLOPs/step", -1, ".5g", "per image per step, one forward per branch (the paper's Table 2)", "0.1%"),
    Column("gflops_step_run", "run/step", -1, ".5g", "per image per step as executed (shared prefix computed once)"),
    Column("delta_gflops_step", "Δ unguided", -1, ".4g", "GFLOPs/step minus the dense unguided model's (Table 2's Δ)"),
    Column("gflops_image", "GFLOPs/img", -1, ".5g", "whole trajectory per image, as executed"),
    Column("images_per_s", "img/s", +1, ".3g", "measured sampling throughput (machine-dependent)"),
)
COST_ALIASES = {"gflops": "gflops_step", "throughput": "images_per_s", "ips": "images_per_s"}
COLUMNS = {c.key: c for c in METRIC_COLUMNS + COST_COLUMNS}
PRIMARY = dict(BOARDS)  # board kind -> the quality its Pareto front and default sort use
ALIASES = {**{alias: m.key for m in REGISTRY.values() for alias in m.aliases}, **COST_ALIASES}


def column_key(name: str) -> str:
    """'fid' -> 'fd'; raises for an unknown column name."""
    key = ALIASES.get(name.strip().lower().replace("-", "_"), name.strip().lower().replace("-", "_"))
    if key not in COLUMNS:
        raise SgbenchError(f"Unknown column '{name}'; expected one of {', '.join(COLUMNS)} (or fid)")
    return key


def sort_help() -> str:
    """The help of `compare --sort`: every column a board sorts by, with the other names it accepts."""
    aliases: dict[str, list[str]] = {}
    for alias, key in ALIASES.items():
        aliases.setdefault(key, []).append(alias)
    names = [f"{key} (or {', '.join(aliases[key])})" if key in aliases else key for key in COLUMNS]
    return f"Column (default: FD, or GenEval for text-to-image runs): {', '.join(names)}"


# ----------------------------------------------------------------------------------------------------
# Records


@dataclass
class RunRecord:
    """One evaluated run directory."""

    path: Path
    backbone: str  # checkpoint stem (model config name)
    method: str
    params: dict  # resolved guidance parameters
    key: str  # the configuration: everything but the seed
    label: str  # 'sg gs=0.5 gw=0.9 w=1.5'
    seed: int
    steps: int
    num_samples: int
    values: dict[str, float | None]  # COLUMNS keys -> value
    ci95: dict[str, list[float] | None]  # COLUMNS keys -> 95% bootstrap interval
    kind: str = "class"  # 'class' or 't2i' (a text run): which board it belongs to
    sparsity: str = "dense"  # of the backbone: routing, masking or dense


@dataclass
class Problem:
    """A run directory that is broken (unreadable) or partial (unfinished, not evaluated)."""

    path: Path
    status: str  # 'broken' or 'partial'
    reason: str
    key: str | None = None  # the configuration, where run.json could be read


@dataclass
class Loaded:
    records: list[RunRecord]
    problems: list[Problem]
    extractor: str | None
    reference: str | None


def _fmt_param(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ":".join(_fmt_param(x) for x in v)
    return str(v)


def method_label(method: str, params: dict) -> str:
    """Compact: 'sg gs=0.5 gw=0.9 w=1.5'; an interval is shown only when it is not 0:1, and parameters
    of a branch that never runs (the weak sparsity at w = 1) are left out."""
    parts = [method]
    scale = params.get("scale")
    for k, v in params.items():
        if k == "scale" or (k == "interval" and list(v) == [0.0, 1.0]) or (k == "gw" and scale == 1.0):
            continue
        parts.append(f"{'t' if k == 'interval' else k}={_fmt_param(v)}")
    if scale is not None:
        parts.append(f"w={_fmt_param(scale)}")
    return " ".join(parts)


def backbone_name(info: RunInfo) -> str:
    ckpt = Path(info.model.get("checkpoint") or info.config["checkpoint"])
    name = info.model.get("config", {}).get("name")
    return f"{ckpt.stem} ({name})" if name and name != "custom" else ckpt.stem


def sparsity_of(info: RunInfo) -> str:
    """'masking', 'routing' or 'dense', from the model config in run.json."""
    config = info.model.get("config") or {}
    return "masking" if config.get("masking") else "routing" if config.get("routes") else "dense"


def config_key(info: RunInfo) -> str:
    """The configuration a baseline is keyed by: backbone + method + params + solver/steps + samples."""
    cfg = info.config
    guide = f" guide={Path(cfg['guide']).stem}" if cfg.get("guide") else ""
    conditions = cfg.get("labels", "balanced")
    if info.conditioning is not None:
        conditions = f"prompts {Path(info.conditioning['prompts']).name} x{info.conditioning['images_per_prompt']}"
    return (f"{backbone_name(info)} | {method_label(info.guidance['name'], info.guidance['params'])}{guide} | "
            f"{cfg['solver']} {cfg['steps']} steps | n={info.num_samples} {conditions}")


def costs(info: RunInfo) -> dict[str, float | None]:
    f = info.flops or {}
    try:
        n = f["num_evals"]
        return {
            "gflops_step": f["per_image"]["no_sharing"]["paper"] / n,
            "gflops_step_run": f["per_image"]["shared_prefix"]["paper"] / n,
            "delta_gflops_step": f["delta_to_unguided_per_image"]["no_sharing"]["paper"] / n,
            "gflops_image": f["per_image"]["shared_prefix"]["paper"],
        }
    except (KeyError, TypeError, ZeroDivisionError):
        return dict.fromkeys(("gflops_step", "gflops_step_run", "delta_gflops_step", "gflops_image"))


def load_run(run: RunDir, *, extractor: str, reference: str) -> RunRecord | Problem:
    """One run directory -> a record with metrics against (extractor, reference), or the problem."""
    path = run.path
    if not path.is_dir():
        return Problem(path, "broken", "not a directory" if path.exists() else "does not exist")
    state = run.state()
    if state is State.EMPTY:
        return Problem(path, "broken", "not a run directory (no sample_config.json)")
    if state is State.PARTIAL:
        shards = len(run.shards())
        return Problem(path, "partial", f"sampling unfinished ({shards} shards, no samples.npz or run.json): rerun the same command to resume")
    try:
        info = run.info()
        key = config_key(info)
    except SgbenchError as e:
        return Problem(path, "broken", str(e))
    except (KeyError, TypeError) as e:
        return Problem(path, "broken", f"run.json lacks {e}")
    try:
        every = run.all_metrics()
        current = run.metrics()
    except (SgbenchError, OSError) as e:
        return Problem(path, "broken", str(e), key)
    if info.conditioning is not None:
        return _text_record(run, info, key, every, current)
    primary = REGISTRY[PRIMARY["class"]]
    if not every:
        return Problem(path, "partial", f"not evaluated (no metrics): sgbench eval fid {path} --ref {reference}", key)
    if primary.find(current, extractor, reference) is None:
        if any(r.extractor == extractor and r.reference == reference for r in every):
            return Problem(path, "partial", "metrics were computed on other samples (samples.npz changed since): re-evaluate", key)
        have = ", ".join(f"{e}/{r}" for e, r in _metric_sets(current)) or "none"
        return Problem(path, "partial", f"no metrics for extractor {extractor} / reference {reference} (has: {have})", key)
    return _record(run, info, key, "class", current, extractor=extractor, reference=reference)


def _text_record(run: RunDir, info: RunInfo, key: str, every, current) -> RunRecord | Problem:
    """A text run: GenEval (the real evaluator's if ingested, else the offline judge's), HPSv3, CLIP."""
    primary = REGISTRY[PRIMARY["t2i"]]
    if primary.find(current, "", "") is None:  # a text board has no extractor or reference statistics
        stale = any(r.metric == primary.stored for r in every)
        why = "GenEval was computed on other samples: re-evaluate" if stale else f"not evaluated: sgbench eval geneval {run.path}"
        return Problem(run.path, "partial", why, key)
    return _record(run, info, key, "t2i", current, extractor="", reference="")


def _record(run: RunDir, info: RunInfo, key: str, kind: str, current, *, extractor: str, reference: str) -> RunRecord:
    """The run's row values: each metric of its board as the metric's reader picks it (docs/design.md,
    "Metrics"), and the costs."""
    values: dict[str, float | None] = {}
    ci95: dict[str, list[float] | None] = {}
    for metric in board_metrics(kind):
        found = metric.find(current, extractor, reference)
        values[metric.key], ci95[metric.key] = (float(found.value), found.ci95) if found is not None else (None, None)
    values.update(costs(info))
    values["images_per_s"] = (info.timing or {}).get("images_per_s")
    return RunRecord(
        path=run.path, backbone=backbone_name(info), method=info.guidance["name"], params=info.guidance["params"], key=key,
        label=method_label(info.guidance["name"], info.guidance["params"]), seed=int(info.seed),
        steps=int(info.config["steps"]), num_samples=int(info.num_samples), values=values, ci95=ci95,
        sparsity=sparsity_of(info), kind=kind,
    )


def _metric_sets(records) -> Counter:
    """(extractor, reference) -> how many of these records score the class board's primary metric with them."""
    primary = REGISTRY[PRIMARY["class"]].stored
    return Counter((r.extractor, r.reference) for r in records if r.metric == primary)


def _no_runs_message(paths: list) -> str:
    """Why nothing given is a run: what a run directory holds, and the folder/* meant where runs sit one level down
    (a folder that itself looks like a run, e.g. a stray samples.npz, is not searched for runs)."""
    given = [Path(p) for p in paths]
    below = [f"{p}/*" for p in given if p.is_dir()
             and any(c.is_dir() and RunDir(c).state() is not State.EMPTY for c in p.iterdir())]
    return (f"Expected a run directory or a folder of run directories but {', '.join(map(str, given))} "
            f"{'holds' if len(given) == 1 else 'hold'} no run: a run directory holds sample_config.json, samples.npz and "
            "run.json (written by `sgbench sample`)" + (f"; did you mean {' '.join(below)}?" if below else ""))


def load_runs(paths: Iterable[str | Path], *, extractor: str | None = None, reference: str | None = None) -> Loaded:
    """Load run directories (or folders of them). Without extractor/reference, the pair that most runs
    were evaluated with is used; runs evaluated only against another are listed as problems."""
    paths = list(paths)
    if not paths:
        raise SgbenchError("Expected at least one run directory")
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise SgbenchError(f"Expected run directories (or folders of them) but {', '.join(missing)} does not exist")
    runs = expand(paths)
    if not any(run.path.is_dir() and run.state() is not State.EMPTY for run in runs):
        raise SgbenchError(_no_runs_message(paths))
    if extractor is None or reference is None:
        seen: Counter = Counter()
        for run in runs:
            try:
                seen.update(_metric_sets(run.metrics()))
            except (SgbenchError, OSError):
                pass
        pairs = [p for p, _ in seen.most_common() if (extractor or p[0]) == p[0] and (reference or p[1]) == p[1]]
        if pairs:
            extractor, reference = pairs[0]
    extractor, reference = extractor or "animal", reference or "?"
    records, problems = [], []
    for run in runs:
        r = load_run(run, extractor=extractor, reference=reference)
        (records if isinstance(r, RunRecord) else problems).append(r)
    return Loaded(records, problems, extractor, reference)

"""Results: run directories -> leaderboard rows, and the regression gate (DESIGN section 7).

Pure bookkeeping over files (no torch): a run directory is read, never re-run. Every directory given
ends up either as a row of the leaderboard or in `problems` with the reason (no run.json, sampling
unfinished, not evaluated, evaluated against another reference ...); nothing is dropped silently.

    runs = load_runs(["runs/sg", "runs/cfg"])               # -> Loaded(records, problems, extractor, reference)
    board = leaderboard(runs, sort="fd")                    # seeds aggregated, Pareto front marked
    print(render(board, "markdown"))
    failures = check_baseline(board, read_baseline("baseline.json"))

Costs are the paper's convention (MACs of linear layers, Table 2) unless labelled "+attn" (`macs`:
with the attention matmuls). "per step" is GFLOPs per image per solver evaluation, averaged over the
trajectory (Table 2's 114.42 for SiT-XL/2); "per image" is the whole trajectory.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from sgbench.errors import SgbenchError

RUN_FILE, SAMPLES_FILE, METRICS_FILE = "run.json", "samples.npz", "metrics.json"

# ----------------------------------------------------------------------------------------------------
# Columns: key, header, direction (-1 lower is better, +1 higher is better), format


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    better: int
    fmt: str  # format spec: fixed decimals for metrics, significant digits for costs (tiny to XL models)
    help: str


METRIC_COLUMNS = (
    Column("fd", "FID", -1, ".3f", "Frechet distance to the reference ('FD' in a non-Inception feature space)"),
    Column("sfid", "sFID", -1, ".3f", "spatial FID (Inception only)"),
    Column("is", "IS", +1, ".2f", "Inception Score (of the extractor's logits)"),
    Column("precision", "Prec.", +1, ".3f", "precision, k = 3"),
    Column("recall", "Rec.", +1, ".3f", "recall, k = 3"),
    Column("class_accuracy", "Class acc.", +1, ".3f", "fraction classified as their requested label"),
    Column("kid", "KID", -1, ".5f", "kernel inception distance"),
)
COST_COLUMNS = (
    Column("gflops_step", "GFLOPs/step", -1, ".5g", "per image per step, paper convention (Table 2)"),
    Column("gflops_step_attn", "+attn", -1, ".5g", "per image per step with attention matmuls (macs)"),
    Column("delta_gflops_step", "Δ unguided", -1, ".4g", "per step, against the dense unguided model"),
    Column("gflops_image", "GFLOPs/img", -1, ".5g", "whole trajectory per image, paper convention"),
    Column("images_per_s", "img/s", +1, ".3g", "measured sampling throughput (machine-dependent)"),
)
COLUMNS = {c.key: c for c in METRIC_COLUMNS + COST_COLUMNS}
ALIASES = {"fid": "fd", "accuracy": "class_accuracy", "acc": "class_accuracy", "gflops": "gflops_step",
           "throughput": "images_per_s", "ips": "images_per_s"}
FORMATS = ("table", "markdown", "csv", "json")
# Default tolerances stored in a baseline: absolute, or relative to the baseline value with '%'.
DEFAULT_TOLERANCES = {"fd": "5%", "sfid": "5%", "is": "5%", "precision": 0.03, "recall": 0.03,
                      "class_accuracy": 0.02, "gflops_step": "0.1%"}


def reference_name(ref: str | Path) -> str:
    """The name metrics.json records for a reference: a manifest name as given, or an npz's own name."""
    path = Path(ref)
    if path.suffix == ".npz" and path.is_file():
        import numpy as np

        with np.load(path) as f:
            if "meta" in f.files:
                return json.loads(str(f["meta"]))["name"]
    return str(ref)


def column_key(name: str) -> str:
    """'fid' -> 'fd'; raises for an unknown column name."""
    key = ALIASES.get(name.strip().lower().replace("-", "_"), name.strip().lower().replace("-", "_"))
    if key not in COLUMNS:
        raise SgbenchError(f"Unknown column '{name}'; expected one of {', '.join(COLUMNS)} (or fid)")
    return key


# ----------------------------------------------------------------------------------------------------
# Loading run directories


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


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories; a directory that is not a run itself stands for the runs directly inside it."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not _looks_like_run(p):
            children = sorted(c for c in p.iterdir() if c.is_dir() and _looks_like_run(c))
            if children:
                out.extend(children)
                continue
        out.append(p)
    return out


def _looks_like_run(p: Path) -> bool:
    return any((p / f).exists() for f in (RUN_FILE, SAMPLES_FILE, "sample_config.json", "shards"))


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


def _backbone(run: dict) -> str:
    ckpt = Path(run.get("model", {}).get("checkpoint") or run["config"]["checkpoint"])
    name = run.get("model", {}).get("config", {}).get("name")
    return f"{ckpt.stem} ({name})" if name and name != "custom" else ckpt.stem


def config_key(run: dict) -> str:
    """The configuration a baseline is keyed by: backbone + method + params + solver/steps + samples."""
    cfg = run["config"]
    guide = f" guide={Path(cfg['guide']).stem}" if cfg.get("guide") else ""
    return (f"{_backbone(run)} | {method_label(run['guidance']['name'], run['guidance']['params'])}{guide} | "
            f"{cfg['solver']} {cfg['steps']} steps | n={run['num_samples']} {cfg.get('labels', 'balanced')}")


def _costs(run: dict) -> dict[str, float | None]:
    f = run.get("flops") or {}
    try:
        n = f["num_evals"]
        per_image = f["per_image"]["shared_prefix"]
        return {
            "gflops_step": per_image["paper"] / n,
            "gflops_step_attn": per_image["macs"] / n,
            "delta_gflops_step": f["delta_to_unguided_per_image"]["shared_prefix"]["paper"] / n,
            "gflops_image": per_image["paper"],
        }
    except (KeyError, TypeError, ZeroDivisionError):
        return dict.fromkeys(("gflops_step", "gflops_step_attn", "delta_gflops_step", "gflops_image"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name} is unreadable ({e.__class__.__name__}: {e})") from None


def _metric_sets(metrics: dict) -> Counter:
    return Counter((r["extractor"], r["reference"]) for r in metrics.get("records", []) if r.get("metric") == "fid")


def load_run(path: str | Path, *, extractor: str, reference: str) -> RunRecord | Problem:
    """One run directory -> a record with metrics against (extractor, reference), or the problem."""
    path = Path(path)
    if not path.is_dir():
        return Problem(path, "broken", "not a directory" if path.exists() else "does not exist")
    if not (path / RUN_FILE).is_file():
        shards = len(list((path / "shards").glob("shard-*.npz"))) if (path / "shards").is_dir() else 0
        if shards or (path / "sample_config.json").is_file():
            return Problem(path, "partial", f"sampling unfinished ({shards} shards, no run.json): rerun the same command to resume")
        return Problem(path, "broken", "no run.json: not a run directory")
    try:
        run = _read_json(path / RUN_FILE)
        key = config_key(run)
    except ValueError as e:
        return Problem(path, "broken", str(e))
    except (KeyError, TypeError) as e:
        return Problem(path, "broken", f"run.json lacks {e} (written by another version?)")
    if not (path / SAMPLES_FILE).is_file():
        return Problem(path, "partial", "run.json but no samples.npz", key)
    if not (path / METRICS_FILE).is_file():
        return Problem(path, "partial", f"not evaluated (no metrics.json): sgbench eval fid {path} --ref {reference}", key)
    try:
        metrics = _read_json(path / METRICS_FILE)
    except ValueError as e:
        return Problem(path, "broken", str(e), key)
    records = [r for r in metrics.get("records", []) if r.get("extractor") == extractor and r.get("reference") == reference]
    if not any(r.get("metric") == "fid" for r in records):
        have = ", ".join(f"{e}/{r}" for e, r in _metric_sets(metrics)) or "none"
        return Problem(path, "partial", f"no metrics for extractor {extractor} / reference {reference} (has: {have})", key)
    stale = {r["num_samples"] for r in records} - {run["num_samples"]}
    if stale:
        return Problem(path, "partial", f"metrics computed on {sorted(stale)} samples but the run has {run['num_samples']}: re-evaluate", key)
    values: dict[str, float | None] = {c.key: None for c in METRIC_COLUMNS}
    for r in records:
        col = "fd" if r["metric"] == "fid" else r["metric"]
        if col in values:
            values[col] = float(r["value"])
    values.update(_costs(run))
    values["images_per_s"] = (run.get("timing") or {}).get("images_per_s")
    cfg = run["config"]
    return RunRecord(
        path=path, backbone=_backbone(run), method=run["guidance"]["name"], params=run["guidance"]["params"], key=key,
        label=method_label(run["guidance"]["name"], run["guidance"]["params"]), seed=int(run.get("seed", cfg.get("seed", 0))),
        steps=int(cfg["steps"]), num_samples=int(run["num_samples"]), values=values,
    )


def load_runs(paths: Iterable[str | Path], *, extractor: str | None = None, reference: str | None = None) -> Loaded:
    """Load run directories (or folders of them). Without extractor/reference, the pair that most runs
    were evaluated with is used; runs evaluated only against another are listed as problems."""
    dirs = expand_paths(paths)
    reference = reference_name(reference) if reference else None
    if not dirs:
        raise SgbenchError("Expected at least one run directory")
    if extractor is None or reference is None:
        seen: Counter = Counter()
        for d in dirs:
            try:
                seen.update(_metric_sets(json.loads((d / METRICS_FILE).read_text())))
            except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
                pass
        pairs = [p for p, _ in seen.most_common() if (extractor or p[0]) == p[0] and (reference or p[1]) == p[1]]
        if pairs:
            extractor, reference = pairs[0]
    extractor, reference = extractor or "animal", reference or "?"
    records, problems = [], []
    for d in dirs:
        r = load_run(d, extractor=extractor, reference=reference)
        (records if isinstance(r, RunRecord) else problems).append(r)
    return Loaded(records, problems, extractor, reference)


# ----------------------------------------------------------------------------------------------------
# Leaderboard: seeds aggregated (mean, sample std, n), Pareto front of FD against GFLOPs per image


@dataclass
class Row:
    backbone: str
    label: str
    key: str
    method: str
    params: dict
    n: int
    seeds: list[int]
    mean: dict[str, float | None]
    std: dict[str, float | None]  # sample std (ddof 1) over seeds; None for n = 1
    runs: list[str]
    pareto: bool = False


@dataclass
class Leaderboard:
    rows: list[Row]
    problems: list[Problem]
    extractor: str | None
    reference: str | None
    sort: str = "fd"
    columns: list[str] = field(default_factory=list)  # shown: those any row has a value for

    @property
    def fd_header(self) -> str:
        return "FID" if self.extractor == "inception" else "FD"

    def header(self, key: str) -> str:
        return self.fd_header if key == "fd" else COLUMNS[key].header


def _aggregate(records: list[RunRecord]) -> Row:
    first = records[0]
    mean, std = {}, {}
    for k in COLUMNS:
        xs = [r.values.get(k) for r in records if r.values.get(k) is not None]
        mean[k] = sum(xs) / len(xs) if xs else None
        std[k] = math.sqrt(sum((x - mean[k]) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return Row(first.backbone, first.label, first.key, first.method, first.params, len(records),
               sorted(r.seed for r in records), mean, std, [str(r.path) for r in records])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Minimising both coordinates: a point is on the front when no other is <= in both and < in one."""
    return [
        not any(q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1]) for q in points)
        for p in points
    ]


def leaderboard(loaded: Loaded, *, sort: str = "fd", descending: bool | None = None) -> Leaderboard:
    """Group runs by configuration (all but the seed), mark each backbone's Pareto front (FD vs
    GFLOPs per image), sort by a column (best first unless `descending` says otherwise)."""
    sort = column_key(sort)
    groups: dict[str, list[RunRecord]] = {}
    for r in loaded.records:
        groups.setdefault(r.key, []).append(r)
    rows = [_aggregate(rs) for rs in groups.values()]
    for backbone in {r.backbone for r in rows}:
        cand = [r for r in rows if r.backbone == backbone and r.mean["fd"] is not None and r.mean["gflops_image"] is not None]
        for r, on in zip(cand, pareto_front([(r.mean["fd"], r.mean["gflops_image"]) for r in cand])):
            r.pareto = on
    if descending is None:
        descending = COLUMNS[sort].better > 0
    present = [r for r in rows if r.mean[sort] is not None]
    present.sort(key=lambda r: (r.mean[sort], r.key), reverse=descending)
    rows = present + sorted((r for r in rows if r.mean[sort] is None), key=lambda r: r.key)
    columns = [k for k in COLUMNS if any(r.mean[k] is not None for r in rows)]
    return Leaderboard(rows, loaded.problems, loaded.extractor, loaded.reference, sort, columns)


# ----------------------------------------------------------------------------------------------------
# Output: rich table, Markdown, CSV, JSON


def _cell(row: Row, key: str) -> str:
    m, s = row.mean[key], row.std[key]
    if m is None:
        return "-"
    f = COLUMNS[key].fmt
    return f"{m:{f}} ± {s:{f}}" if s is not None else f"{m:{f}}"


def _title(board: Leaderboard) -> str:
    return (f"{board.fd_header} against '{board.reference}' ({board.extractor} features); GFLOPs per image, paper "
            f"convention (+attn: with attention matmuls); sorted by {board.header(board.sort)}")


NOTES = ("* = Pareto front of {fd} against GFLOPs per image within a backbone. Several seeds: mean ± std (n). "
         "Δ unguided: GFLOPs per step minus the dense unguided model's. img/s is measured on the machine that sampled.")


def _flat(board: Leaderboard) -> list[dict]:
    out = []
    for r in board.rows:
        d = {"status": "ok", "backbone": r.backbone, "method": r.method, "config": r.label, "params": r.params, "key": r.key,
             "n": r.n, "seeds": r.seeds, "pareto": r.pareto}
        for k in COLUMNS:
            d[k], d[f"{k}_std"] = r.mean[k], r.std[k]
        d["runs"] = r.runs
        out.append(d)
    return out


def render(board: Leaderboard, fmt: str = "table") -> str:
    """The leaderboard as text: 'table' (rich, plain text when not a terminal), 'markdown', 'csv' or 'json'."""
    if fmt not in FORMATS:
        raise SgbenchError(f"Unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    notes = NOTES.format(fd=board.fd_header)
    if fmt == "json":
        return json.dumps({
            "extractor": board.extractor, "reference": board.reference, "sort": board.sort,
            "columns": {k: {"header": board.header(k), "better": {-1: "lower", 1: "higher"}[COLUMNS[k].better],
                            "help": COLUMNS[k].help} for k in board.columns},
            "rows": _flat(board),
            "problems": [{"path": str(p.path), "status": p.status, "reason": p.reason, "key": p.key} for p in board.problems],
        }, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        names = ["status", "backbone", "config", "n", "pareto"] + [x for k in board.columns for x in (k, f"{k}_std")] + ["key", "runs", "reason"]
        w = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for d in _flat(board):
            w.writerow({**d, "runs": ";".join(d["runs"])})
        for p in board.problems:
            w.writerow({"status": p.status, "key": p.key or "", "runs": str(p.path), "reason": p.reason})
        return buf.getvalue()
    headers = ["", "backbone", "method", "n"] + [board.header(k) for k in board.columns]
    cells = [["*" if r.pareto else "", r.backbone, r.label, str(r.n)] + [_cell(r, k) for k in board.columns] for r in board.rows]
    if fmt == "markdown":
        lines = [f"**{_title(board)}**", "", "| " + " | ".join(headers) + " |",
                 "|" + "|".join(":--" if i < 3 else "--:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        lines += ["", notes]
        if board.problems:
            lines += ["", "Not in the table:", ""] + [f"- `{p.path}`: {p.status}, {p.reason}" for p in board.problems]
        return "\n".join(lines) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_title(board), caption=notes, caption_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 3 else "right", no_wrap=i == 0)
    for c in cells:
        table.add_row(*c)
    width = Console(file=io.StringIO(), width=1000).measure(table).maximum  # never wrap a row
    console = Console(file=io.StringIO(), width=max(width, 100), force_terminal=False)
    console.print(table)
    for p in board.problems:
        console.print(f"[yellow]{p.status}[/yellow] {p.path}: {p.reason}", highlight=False)
    return console.file.getvalue()


# ----------------------------------------------------------------------------------------------------
# Regression gate


def parse_tolerances(items: Iterable[str]) -> dict[str, float | str]:
    """['fid=0.5', 'class_accuracy=0.02', 'is=5%'] -> {'fd': 0.5, 'class_accuracy': 0.02, 'is': '5%'}."""
    out: dict[str, float | str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq:
            raise SgbenchError(f"Expected --tolerance METRIC=VALUE (e.g. fid=0.5 or fid=5%) but got '{item}'")
        out[column_key(name)] = _check_tolerance(name, value.strip())
    return out


def _check_tolerance(name: str, value) -> float | str:
    try:
        x = float(str(value).rstrip("%"))
    except ValueError:
        x = -1.0
    if not (x >= 0 and math.isfinite(x)):
        raise SgbenchError(f"Expected a tolerance >= 0 (absolute, or relative as N%) for {name} but got '{value}'")
    return value if str(value).endswith("%") else x


def _allowed(tol: float | str, base: float) -> float:
    return float(tol[:-1]) / 100 * abs(base) if isinstance(tol, str) else float(tol)


def baseline_dict(board: Leaderboard, tolerances: dict[str, float | str] | None = None) -> dict:
    """The leaderboard as a baseline: metric means per configuration key, plus the tolerances to apply."""
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    if board.problems:
        listed = "; ".join(f"{p.path}: {p.reason}" for p in board.problems)
        raise SgbenchError(f"Refusing to save a baseline with broken or partial runs ({listed})")
    return {
        "version": 1, "kind": "sgbench-baseline",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "extractor": board.extractor, "reference": board.reference, "tolerances": tol,
        "entries": [{"key": r.key, "n": r.n, "seeds": r.seeds,
                     "values": {k: r.mean[k] for k in COLUMNS if r.mean[k] is not None}} for r in board.rows],
    }


def save_baseline(board: Leaderboard, path: str | Path, tolerances: dict[str, float | str] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_dict(board, tolerances), indent=2) + "\n")
    return path


def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Baseline file {path} does not exist; write one with `sgbench compare RUN... --save-baseline {path}`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SgbenchError(f"Baseline {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("kind") != "sgbench-baseline" or not isinstance(data.get("entries"), list):
        raise SgbenchError(f"{path} is not an sgbench baseline (expected kind 'sgbench-baseline' with 'entries')")
    return data


@dataclass
class GateResult:
    failures: list[str]
    passed: list[str]
    new: list[str]  # configurations not in the baseline (not a failure)

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        lines = [f"FAIL {m}" for m in self.failures] + [f"new (not in baseline) {k}" for k in self.new]
        verdict = "passed" if self.ok else f"FAILED: {len(self.failures)} regression(s)"
        lines.append(f"Regression gate {verdict}; {len(self.passed)} check(s) within tolerance.")
        return "\n".join(lines)


def check_baseline(board: Leaderboard, baseline: dict, tolerances: dict[str, float | str] | None = None) -> GateResult:
    """Compare each baseline configuration's metrics with the current leaderboard's: a metric that moved
    beyond its tolerance in the bad direction, or a configuration missing or broken, is a failure."""
    tol = {column_key(k): _check_tolerance(k, v) for k, v in baseline.get("tolerances", {}).items()}
    tol.update(tolerances or {})
    rows = {r.key: r for r in board.rows}
    broken = {p.key: p for p in board.problems if p.key}
    failures, passed = [], []
    for entry in baseline["entries"]:
        key = entry["key"]
        if key not in rows:
            why = f"{broken[key].status}: {broken[key].reason}" if key in broken else "no run of this configuration was given"
            failures.append(f"{key}: missing ({why})")
            continue
        row = rows[key]
        for metric, allowed in tol.items():
            base = entry["values"].get(metric)
            if base is None:
                continue
            cur = row.mean.get(metric)
            name = board.header(metric)
            if cur is None:
                failures.append(f"{key}: {name} missing (baseline {base:.4g})")
                continue
            delta, limit = cur - base, _allowed(allowed, base)
            worse = -COLUMNS[metric].better * delta  # > 0 when it moved in the bad direction
            shown = f"{name} {base:.4g} -> {cur:.4g} ({delta:+.4g}, tolerance {allowed if isinstance(allowed, str) else f'{allowed:g}'})"
            (failures if worse > limit + 1e-12 else passed).append(f"{key}: {shown}")
    new = [k for k in rows if k not in {e["key"] for e in baseline["entries"]}]
    return GateResult(failures, passed, new)

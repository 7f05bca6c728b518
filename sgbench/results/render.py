"""Every table sgbench prints, rendered as text by the library (the CLI only echoes it).

The leaderboard in four formats (`table`: rich, plain text when not a terminal; `markdown`; `csv`;
`json`), and the reports of `flops`, `guidance list`, `eval fid` and `speed`. Numbers from samples are
shown as value ± half the width of their 95% interval; CSV and JSON carry the interval's ends.

With `paper=` tables (sgbench.results.paper, `compare --reference paper`), the paper's reported rows
follow the leaderboard as a block of their own, labelled as the paper's and never ranked, tiered or
put on a Pareto front with measured runs; each row names its table, backbone, epochs and protocol.
JSON carries them as the list `paper`, CSV as rows with status `paper`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from sgbench.utils.errors import SgbenchError
from sgbench.results.leaderboard import Leaderboard, Row
from sgbench.results.paper import PaperRow, PaperTable
from sgbench.results.records import COLUMNS, COST_COLUMNS

FORMATS = ("table", "markdown", "csv", "json")
_COSTS = {c.key for c in COST_COLUMNS}
PAIRED_CSV = ["paired_against", "paired_metric", "paired_delta", "paired_lo", "paired_hi", "paired_p"]


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise SgbenchError(f"Unknown --format '{fmt}'; expected one of {', '.join(FORMATS)}")


def rich_text(*renderables, width: int | None = None) -> str:
    """Render rich objects to plain text, as wide as the widest one needs (rows never wrap)."""
    from rich.console import Console

    need = max(Console(file=io.StringIO(), width=1000).measure(r).maximum for r in renderables)
    console = Console(file=io.StringIO(), width=width or max(need, 120), force_terminal=False, highlight=False)
    for r in renderables:
        console.print(r)
    return console.file.getvalue()


def table(title: str, headers: list[str], rows: list[list[str]], *, caption: str | None = None, left: int = 1):
    """A rich Table: the first `left` columns left-aligned, the rest right-aligned."""
    from rich.table import Table

    t = Table(title=title, caption=caption, caption_justify="left")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i < left else "right")
    for r in rows:
        t.add_row(*r)
    return t


# ----------------------------------------------------------------------------------------------------
# The leaderboard


def _pm(row: Row, key: str) -> str:
    m = row.mean[key]
    if m is None:
        return "-"
    f = COLUMNS[key].fmt
    ci = row.ci95.get(key)
    return f"{m:{f}} ± {(ci[1] - ci[0]) / 2:{f}}" if ci is not None and key not in _COSTS else f"{m:{f}}"


def _paired_cell(row: Row) -> str:
    """'+2.51 [+0.71, +3.88]': the row's paired difference to its reference row; 'reference' for that row."""
    p = row.paired
    if p is None:
        return "-"
    if p["against"] == row.label:
        return "reference"
    f = COLUMNS[p["metric"]].fmt
    return f"{p['delta']:+{f}} [{p['lo']:+{f}}, {p['hi']:+{f}}]"


def _paired_header(board: Leaderboard) -> str:
    return f"Δ{board.header(board.paired_metric)} paired"


def _title(board: Leaderboard) -> str:
    if board.kind == "t2i":
        return (f"Text-to-image: GenEval (the real evaluator's results where ingested, else the offline judge of "
                f"Animal scenes), HPSv3, CLIP; GFLOPs per image, paper convention; sorted by {board.header(board.sort)}")
    return (f"{board.fd_header} against '{board.reference}' ({board.extractor} features); GFLOPs per image, paper "
            f"convention; sorted by {board.header(board.sort)}")


NOTES = ("± = half the 95% interval (bootstrap over the samples for one seed; t-interval across seeds for n > 1). "
         "tier: rows of one backbone whose {sort} intervals overlap the tier's best row cannot be told apart. "
         "* = Pareto front of {fd} against GFLOPs per image within a backbone, an indistinguishable {fd} counting as equal. "
         "GFLOPs/step: one forward per branch (Table 2); run/step: as executed (shared prefix once). "
         "img/s is measured on the machine that sampled.")
OVERLAP_TIERS = "tier: rows of one backbone whose {sort} intervals overlap the tier's best row cannot be told apart. "
PAIRED_NOTES = ("Δ{metric} paired: the row's {metric} minus its backbone's reference row's, with the 95% interval of the "
                "paired bootstrap (the same draws of samples for both runs). ")
PAIRED_TIERS = ("tier: rows of one backbone that Holm's step-down on the paired differences (5% family-wise) cannot "
                "separate from the tier's best row. ")


def _notes(board: Leaderboard) -> str:
    """The caption; it names the rule that made the tiers (interval overlap, or paired comparisons)."""
    notes = NOTES.format(fd=board.header(board.quality), sort=board.header(board.sort))
    if board.paired_metric is None:
        return notes
    paired = PAIRED_NOTES.format(metric=board.header(board.paired_metric))
    tiers = PAIRED_TIERS if board.tier_rule == "paired" else OVERLAP_TIERS.format(sort=board.header(board.sort))
    return notes.replace(OVERLAP_TIERS.format(sort=board.header(board.sort)), paired + tiers)


def _flat(board: Leaderboard) -> list[dict]:
    out = []
    for r in board.rows:
        d = {"status": "ok", "kind": board.kind, "backbone": r.backbone, "method": r.method, "config": r.label, "params": r.params, "key": r.key,
             "n": r.n, "seeds": r.seeds, "tier": r.tier, "pareto": r.pareto}
        for k in COLUMNS:
            ci = r.ci95.get(k)
            d[k], d[f"{k}_std"] = r.mean[k], r.std[k]
            d[f"{k}_lo"], d[f"{k}_hi"] = (ci[0], ci[1]) if ci else (None, None)
        if board.paired_metric is not None:
            d["paired"] = r.paired
        d["runs"] = r.runs
        out.append(d)
    return out


def render(board: Leaderboard, fmt: str = "table", *, paper: list[PaperTable] | None = None) -> str:
    """The leaderboard as text in one of FORMATS, followed by the paper's tables when given."""
    check_format(fmt)
    notes = _notes(board)
    paper = paper or []
    if fmt == "json":
        body = {
            "extractor": board.extractor, "reference": board.reference, "sort": board.sort, "notes": notes,
            "columns": {k: {"header": board.header(k), "better": {-1: "lower", 1: "higher"}[COLUMNS[k].better],
                            "help": COLUMNS[k].help} for k in board.columns},
            **({"tier_rule": board.tier_rule} if board.paired_metric else {}),
            "rows": _flat(board),
            "problems": [{"path": str(p.path), "status": p.status, "reason": p.reason, "key": p.key} for p in board.problems],
        }
        if paper:
            body["paper"] = [_paper_record(t, r) for t in paper for r in t.rows]
        return json.dumps(body, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        names = (["status", "backbone", "config", "n", "tier", "pareto"]
                 + [x for k in board.columns for x in (k, f"{k}_lo", f"{k}_hi", f"{k}_std")]
                 + (PAIRED_CSV if board.paired_metric else []) + ["key", "runs", "reason"])
        if paper:
            names += [k for k in _paper_csv_columns(paper) if k not in names] + ["table", "method", "epochs", "sparsity", "settings", "protocol"]
        w = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for d in _flat(board):
            paired = {f"paired_{k}": v for k, v in (d.get("paired") or {}).items()}
            w.writerow({**d, **paired, "runs": ";".join(d["runs"])})
        for p in board.problems:
            w.writerow({"status": p.status, "key": p.key or "", "runs": str(p.path), "reason": p.reason})
        for t in paper:
            for r in t.rows:
                w.writerow({"status": "paper", "backbone": r.backbone or "", "config": r.label, "table": r.table, "method": r.method or "",
                            "epochs": r.epochs or "", "sparsity": r.sparsity or "", "settings": _settings(r), "protocol": r.protocol,
                            **{PAPER_TO_COLUMN.get(k, k): v for k, v in r.metrics.items()}})
        return buf.getvalue()
    headers = ["", "tier", "backbone", "method", "n"] + [board.header(k) for k in board.columns]
    cells = [["*" if r.pareto else "", str(r.tier or "-"), r.backbone, r.label, str(r.n)] + [_pm(r, k) for k in board.columns]
             for r in board.rows]
    if board.paired_metric is not None:  # right after the metric it differences
        at = 5 + board.columns.index(board.paired_metric) + 1
        headers.insert(at, _paired_header(board))
        for c, r in zip(cells, board.rows):
            c.insert(at, _paired_cell(r))
    if fmt == "markdown":
        lines = [f"**{_title(board)}**", "", "| " + " | ".join(headers) + " |",
                 "|" + "|".join(":--" if i in (0, 2, 3) else "--:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        lines += ["", notes]
        if board.problems:
            lines += ["", "Not in the table:", ""] + [f"- `{p.path}`: {p.status}, {p.reason}" for p in board.problems]
        if paper:
            headers, cells = _paper_cells(paper)
            lines += ["", f"**{PAPER_TITLE}**", "", "| " + " | ".join(headers) + " |",
                      "|" + "|".join(":--" if i < PAPER_LEFT else "--:" for i in range(len(headers))) + "|"]
            lines += ["| " + " | ".join(c) + " |" for c in cells]
            lines += [""] + [f"- Table {t.number}: {t.protocol}" for t in paper]
        return "\n".join(lines) + "\n"
    text = rich_text(table(_title(board), headers, cells, caption=notes, left=4))
    text += "".join(f"{p.status} {p.path}: {p.reason}\n" for p in board.problems)
    if paper:
        headers, cells = _paper_cells(paper)
        caption = "\n".join(f"Table {t.number}: {t.protocol}" for t in paper)
        text += "\n" + rich_text(table(PAPER_TITLE, headers, cells, caption=caption, left=PAPER_LEFT))
    return text


# ----------------------------------------------------------------------------------------------------
# The paper's reference block

PAPER_TITLE = ("Reference: the paper's reported numbers (Krause et al. 2026), copied from its tables; "
               "not measured here and not ranked with the runs above")
PAPER_LEFT = 6  # source, row, backbone, sparsity, epochs, settings: text; then the metrics
PAPER_TO_COLUMN = {"fid": "fd", "gflops": "gflops_step", "delta_gflops": "delta_gflops_step"}  # the same quantity in our columns


def _settings(row: PaperRow) -> str:
    """The guidance settings the paper states: 'gs=0.5 gw=0.9', the guide (a description) last."""
    items = sorted(row.guidance.items(), key=lambda kv: kv[0] == "guide")
    return " ".join(f"guide: {v}" if k == "guide" else f"{k}={_show(v)}" for k, v in items)


def _paper_record(t: PaperTable, r: PaperRow) -> dict:
    return {"source": "paper", "table": t.number, "label": r.label, "method": r.method, "ours": r.ours, "backbone": r.backbone,
            "sparsity": r.sparsity, "epochs": r.epochs, "guidance": r.guidance, "note": r.note, "protocol": t.protocol,
            "metrics": r.metrics, "columns": {c.key: {"label": c.label, "better": c.better} for c in t.columns}}


def _paper_csv_columns(tables: list[PaperTable]) -> list[str]:
    return list(dict.fromkeys(PAPER_TO_COLUMN.get(c.key, c.key) for t in tables for c in t.columns))


def _paper_cells(tables: list[PaperTable]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the block: the union of the tables' columns, each value with its table's decimals."""
    labels: dict[str, str] = {}
    for c in (c for t in tables for c in t.columns):
        labels.setdefault(c.key, c.label)
    headers = ["source", "row (as printed)", "backbone", "sparsity", "epochs", "settings"] + list(labels.values())
    rows = []
    for t in tables:
        decimals = {c.key: c.decimals for c in t.columns}
        for r in t.rows:
            values = [f"{r.metrics[k]:.{decimals[k]}f}" if r.metrics.get(k) is not None else ("—" if k in r.metrics else "")
                      for k in labels]
            rows.append([f"paper T{t.number}", r.label, r.backbone or "-", r.sparsity or "-", str(r.epochs or "-"),
                         _settings(r) or "-", *values])
    return headers, rows


# ----------------------------------------------------------------------------------------------------
# Other reports


def _show(value) -> str:
    if isinstance(value, list):
        return ":".join(f"{x:g}" if isinstance(x, float) else str(x) for x in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def guidance_table() -> str:
    """`sgbench guidance list`: every registered method, its formula, branches, parameters and defaults."""
    from sgbench.core.guidance import REGISTRY, build_guidance

    rows = []
    for name in REGISTRY:
        m = build_guidance(name)
        fields = {f.name: f for f in dataclasses.fields(m)}
        branches = [f"{b.role}: {b.model}, {b.condition}, gamma={b.sparsity:g}" for b in (m.strong(0.0), m.weak(0.0)) if b]
        params = [f"--{k.replace('_', '-')} {_show(v)}" + (f" ({fields[k].metadata['typical']})" if fields[k].metadata.get("typical") else "")
                  for k, v in m.params.items()]
        if m.needs_guide:
            params.append("--guide CKPT (required)")
        rows.append([name, m.summary, "\n".join(branches), "\n".join(params) or "-"])
    return rich_text(table("Guidance methods: D = D_weak + w (D_strong - D_weak); gamma = fraction of tokens dropped "
                           "(branches shown at t = 0)", ["name", "formula", "branches", "options: default (typical)"], rows, left=4))


def flops_table(reports: list[dict], *, title: str, convention: str) -> str:
    """`sgbench flops`: per method the branches per step, GFLOPs per step (Table 2's one forward per
    branch), its delta to unguided, the same with the shared prefix once, and per image."""
    rows = []
    for r in reports:
        n = r["num_evals"]
        plain, shared = r["mean_per_step"]["no_sharing"][convention], r["mean_per_step"]["shared_prefix"][convention]
        delta = r["delta_to_unguided_per_image"]["no_sharing"][convention] / n
        branches = sum(len(s["branches"]) for s in r["per_step"]) / n
        costly = [f"{k}={_show(v)}" for k, v in r["params"].items() if k in ("gs", "gw", "guide_sparsity", "interval")
                  and not (k == "interval" and v == [0.0, 1.0])] + (["scale=1"] if r["params"].get("scale") == 1 else [])
        rows.append([" ".join([r["method"], *costly]), f"{branches:g}", f"{plain:.2f}", f"{delta:+.2f}", f"{shared:.2f}",
                     f"{r['per_image']['no_sharing'][convention]:.1f}"])
    return rich_text(table(title, ["guidance", "branches/step", "GFLOPs/step", "Δ unguided", "prefix once", "per image"], rows))


def metrics_table(result: dict) -> str:
    """`sgbench eval fid`: each metric with its 95% interval."""
    m, ci = result["metrics"], result.get("ci95", {})
    fd = "FID" if result["extractor"] == "inception" else "FD"
    names = {"fid": fd, "sfid": "sFID", "is": "IS", "precision": "precision", "recall": "recall",
             "class_accuracy": "class accuracy", "kid": "KID"}
    rows = []
    for key, name in names.items():
        if key in m:
            interval = ci.get(key)
            rows.append([name, f"{m[key]:.4f}", f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-"])
    title = (f"{result['num_samples']} samples vs '{result['reference']}' ({result['num_reference']} images), "
             f"{result['extractor']} features, 95% bootstrap intervals ({result.get('bootstrap_replicates', 0)} replicates)")
    return rich_text(table(title, ["metric", "value", "95% interval"], rows))


def speed_table(result: dict, *, title: str) -> str:
    """`sgbench speed`: seconds per step next to GFLOPs, and their ratios to cfg."""
    rows = []
    for row in result["methods"]:
        ratios = [row[k] for k in ("time_vs_cfg", "shared_gflops_vs_cfg", "gflops_vs_cfg")]
        rows.append([row["label"], f"{row['seconds']:.3f}", f"{row['gflops_shared_prefix']:.2f}",
                     *(f"{r:.3f}" if r is not None else "-" for r in ratios)])
    text = rich_text(table(title, ["guidance", "seconds", "GFLOPs/img", "time / cfg", "GFLOPs / cfg", "unshared GFLOPs / cfg"], rows))
    return text + "".join(f"one forward, {row['what']}: {row['seconds']:.3f} s ({row['gflops']:.2f} GFLOPs/img)\n"
                          for row in result["forwards"])


def geneval_table(reports: dict) -> str:
    """GenEval reports (name -> GenevalReport) as a table: each task's score and the overall."""
    from sgbench.data.geneval_words import TASKS

    rows = [[name, *(f"{r.task_scores[t]:.3f}" if t in r.task_scores else "-" for t in TASKS), f"{r.overall:.3f}",
             str(len(r.results))] for name, r in reports.items()]
    return rich_text(table("GenEval (fraction of images judged correct)", ["run", *TASKS, "overall", "images"], rows))


def probe_table(scores: dict[str, float], *, title: str, scenes: int) -> str:
    """`sgbench eval probe`: per attribute, how often the true caption denoises better than the altered one."""
    rows = [[attribute, f"{value:.3f}"] for attribute, value in scores.items()]
    caption = (f"{scenes} held-out scenes per attribute, same noise and t for both captions; 0.5 = the attribute is "
               "ignored, 1 = the true caption always denoises better")
    return rich_text(table(title, ["attribute", "true caption better"], rows, caption=caption))


def probe_time_table(by_t: dict[float, dict[str, float]], *, title: str, scenes: int) -> str:
    """`sgbench eval probe --t ...`: the probe at fixed times, one column per t (0 = pure noise)."""
    attributes = list(next(iter(by_t.values())))
    rows = [[a, *(f"{scores[a]:.3f}" for scores in by_t.values())] for a in attributes]
    caption = (f"{scenes} held-out scenes per attribute, every scene at the column's t with the same noise; 0.5 = the "
               "attribute is ignored at that noise level")
    return rich_text(table(title, ["attribute", *(f"t={v:g}" for v in by_t)], rows, caption=caption))

"""The paper's result tables (sgbench/data/paper_tables.yaml) as validated rows for a reference block.

    rows = paper_rows("imagenet-256")          # Tables 1-3
    rows = paper_rows("hpsv3", table=4)        # one table
    for row in rows: print(row.display_label, row.metrics)
    tables = reference_tables("paper", masking=False, inception=True)   # `compare --reference paper`

Every row carries its source: table number, benchmark, protocol, backbone, epochs, sparsity and the
guidance settings the paper states. These are the paper's numbers, never measurements of ours: a
leaderboard shows them in a block of their own, labelled "paper".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sgbench.utils.errors import SgbenchError

TABLES_FILE = Path(__file__).resolve().parents[1] / "data" / "paper_tables.yaml"
SCHEMA = 1
BENCHMARKS = ("imagenet-256", "hpsv3", "geneval")
SPARSITY = ("routing", "masking", "dense")

_TABLE_KEYS = {"number", "title", "benchmark", "protocol", "columns", "rows", "backbone", "sparsity"}
_COLUMN_KEYS = {"key", "label", "better", "decimals"}
_ROW_KEYS = {"label", "metrics", "method", "ours", "backbone", "epochs", "sparsity", "guidance", "note"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    better: str  # "lower" or "higher"
    decimals: int


@dataclass(frozen=True)
class PaperRow:
    label: str  # as printed in the paper
    table: int
    benchmark: str
    protocol: str
    metrics: dict  # column key -> float, or None where the paper prints "—"
    method: str | None = None  # an sgbench guidance name, where the row is one
    ours: bool = False  # the paper's own result (False: cited from another paper)
    backbone: str | None = None
    epochs: int | None = None
    sparsity: str | None = None
    guidance: dict = field(default_factory=dict)  # only settings the paper states
    note: str = ""

    @property
    def display_label(self) -> str:
        return f"paper T{self.table}: {self.label}"


@dataclass(frozen=True)
class PaperTable:
    number: int
    title: str
    benchmark: str
    protocol: str
    columns: tuple[Column, ...]
    rows: tuple[PaperRow, ...]


def load_paper_tables(path: str | Path = TABLES_FILE) -> list[PaperTable]:
    """Read and validate the tables file (schema 1); every problem is one SgbenchError naming its place."""
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Paper tables not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if raw.get("schema") != SCHEMA:
        raise SgbenchError(f"{path}: expected schema {SCHEMA} but got {raw.get('schema')!r}")
    tables = [_table(t, f"{path.name}: tables[{i}]") for i, t in enumerate(raw.get("tables") or [])]
    numbers = [t.number for t in tables]
    if len(set(numbers)) != len(numbers):
        raise SgbenchError(f"{path}: table numbers must be unique; got {numbers}")
    return tables


def paper_rows(benchmark: str | None = None, *, table: int | None = None, path: str | Path = TABLES_FILE) -> list[PaperRow]:
    """The rows of every table (of one benchmark, or one table number), in the paper's order."""
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise SgbenchError(f"Expected a benchmark in {', '.join(BENCHMARKS)} but got '{benchmark}'")
    tables = load_paper_tables(path)
    if table is not None and table not in [t.number for t in tables]:
        raise SgbenchError(f"The paper has no Table {table} here; tables: {[t.number for t in tables]}")
    return [
        row
        for t in tables
        if (benchmark is None or t.benchmark == benchmark) and (table is None or t.number == table)
        for row in t.rows
    ]


def reference_tables(spec: str, *, masking: bool = False, inception: bool = False, text: bool = False,
                     path: str | Path = TABLES_FILE) -> list[PaperTable]:
    """The tables `compare --reference SPEC` shows beside a board of runs.

    'paper': for class-conditional runs Table 2 (every guidance method on one routed SiT-XL/2, with
    GFLOPs), plus Table 1 when a run's backbone masks tokens (the paper's only masked rows) and Table 3
    when the runs are scored with Inception (the literature's FID-50K); for text-to-image runs (`text`)
    Tables 4 and 5 (HPSv3 and GenEval of TR-DiT-2.5B). 'paper:1,3' names the tables.
    """
    name, colon, numbers = spec.partition(":")
    if name != "paper" or (colon and not numbers):
        raise SgbenchError(f"Expected --reference paper or paper:N,M (the paper's table numbers) but got '{spec}'")
    tables = {t.number: t for t in load_paper_tables(path)}
    if not numbers:
        if text:
            return [tables[n] for n in (4, 5)]
        return [tables[n] for n in ([1] if masking else []) + [2] + ([3] if inception else [])]
    try:
        wanted = [int(n) for n in numbers.split(",")]
    except ValueError:
        raise SgbenchError(f"Expected --reference paper:N,M with table numbers but got '{spec}'") from None
    missing = [n for n in wanted if n not in tables]
    if missing:
        raise SgbenchError(f"The paper has no Table {missing[0]} here; tables: {sorted(tables)}")
    return [tables[n] for n in wanted]


# ----------------------------------------------------------------------------------------------------
# Validation


def _table(raw: dict, where: str) -> PaperTable:
    _keys(raw, _TABLE_KEYS, {"number", "title", "benchmark", "protocol", "columns", "rows"}, where)
    if raw["benchmark"] not in BENCHMARKS:
        raise SgbenchError(f"{where}: expected benchmark in {', '.join(BENCHMARKS)} but got '{raw['benchmark']}'")
    columns = []
    for j, c in enumerate(raw["columns"]):
        _keys(c, _COLUMN_KEYS, _COLUMN_KEYS, f"{where}.columns[{j}]")
        if c["better"] not in ("lower", "higher"):
            raise SgbenchError(f"{where}.columns[{j}]: expected better: lower or higher but got '{c['better']}'")
        columns.append(Column(str(c["key"]), str(c["label"]), c["better"], int(c["decimals"])))
    keys = [c.key for c in columns]
    defaults = {k: raw[k] for k in ("backbone", "sparsity") if k in raw}
    rows = tuple(_row({**defaults, **r}, int(raw["number"]), raw, keys, f"{where}.rows[{j}]") for j, r in enumerate(raw["rows"]))
    return PaperTable(int(raw["number"]), raw["title"], raw["benchmark"], raw["protocol"], tuple(columns), rows)


def _row(raw: dict, number: int, table: dict, keys: list[str], where: str) -> PaperRow:
    from sgbench.core.guidance import REGISTRY

    _keys(raw, _ROW_KEYS, {"label", "metrics"}, where)
    metrics = raw["metrics"]
    if set(metrics) != set(keys):
        raise SgbenchError(f"{where}: metrics must give every column {keys} (null for '—'); got {sorted(metrics)}")
    for k, v in metrics.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise SgbenchError(f"{where}: metric '{k}' must be a number or null but got {v!r}")
    method = raw.get("method")
    if method is not None and method not in REGISTRY:
        raise SgbenchError(f"{where}: method '{method}' is not a guidance method ({', '.join(REGISTRY)})")
    if raw.get("sparsity") is not None and raw["sparsity"] not in SPARSITY:
        raise SgbenchError(f"{where}: expected sparsity in {', '.join(SPARSITY)} but got '{raw['sparsity']}'")
    return PaperRow(
        label=str(raw["label"]), table=number, benchmark=table["benchmark"], protocol=table["protocol"],
        metrics={k: (None if metrics[k] is None else float(metrics[k])) for k in keys}, method=method,
        ours=bool(raw.get("ours", False)), backbone=raw.get("backbone"), epochs=raw.get("epochs"),
        sparsity=raw.get("sparsity"), guidance=dict(raw.get("guidance") or {}), note=str(raw.get("note", "")),
    )


def _keys(raw, allowed: set, required: set, where: str) -> None:
    if not isinstance(raw, dict):
        raise SgbenchError(f"{where}: expected a mapping but got {type(raw).__name__}")
    unknown, missing = sorted(set(raw) - allowed), sorted(required - set(raw))
    if unknown:
        raise SgbenchError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    if missing:
        raise SgbenchError(f"{where}: missing key(s) {missing}")

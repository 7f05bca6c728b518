"""The regression gate: a leaderboard against a stored baseline (`compare --baseline`, `bench --baseline`).

A baseline stores, per configuration key, every metric's value and 95% interval, and the tolerances.
A metric fails when it moved in the bad direction by more than its tolerance AND beyond noise: outside
the baseline's interval (a metric stored without an interval, like GFLOPs, fails on the tolerance
alone). A move beyond the tolerance but inside the interval is reported as noise, not failed. A
configuration of the baseline that is missing or broken fails too.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_write_json
from sgbench.results.leaderboard import Leaderboard
from sgbench.results.records import COLUMNS, column_key

# Default tolerances stored in a baseline: absolute, or relative to the baseline value with '%'; each
# metric's comes from its declaration (sgbench.evaluation.metrics), GFLOPs/step's from its cost column.
DEFAULT_TOLERANCES = {key: c.tolerance for key, c in COLUMNS.items() if c.tolerance is not None}
BASELINE_KIND = "sgbench-baseline"


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


def _boards(boards: Leaderboard | list[Leaderboard]) -> list[Leaderboard]:
    return boards if isinstance(boards, list) else [boards]


def baseline_dict(boards: Leaderboard | list[Leaderboard], tolerances: dict[str, float | str] | None = None) -> dict:
    """Leaderboards (class and text-to-image) as a baseline: values and intervals per configuration key,
    and the tolerances."""
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    boards = _boards(boards)
    problems = [p for b in boards for p in b.problems]
    if problems:
        listed = "; ".join(f"{p.path}: {p.reason}" for p in problems)
        raise SgbenchError(f"Refusing to save a baseline with broken or partial runs ({listed})")
    board = boards[0]
    return {
        "version": 2, "kind": BASELINE_KIND,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "extractor": board.extractor, "reference": board.reference, "tolerances": tol,
        "entries": [{"key": r.key, "n": r.n, "seeds": r.seeds,
                     "values": {k: r.mean[k] for k in COLUMNS if r.mean[k] is not None},
                     "ci95": {k: r.ci95[k] for k in COLUMNS if r.ci95.get(k) is not None}} for b in boards for r in b.rows],
    }


def save_baseline(board: Leaderboard | list[Leaderboard], path: str | Path, tolerances: dict[str, float | str] | None = None) -> Path:
    path = Path(path)
    body = baseline_dict(board, tolerances)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, body)
    except OSError as e:
        raise SgbenchError(f"Cannot write the baseline {path}: {e.strerror or e}") from None
    return path


def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SgbenchError(f"Baseline file {path} does not exist; write one with `sgbench compare RUN... --save-baseline {path}`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SgbenchError(f"Baseline {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND or not isinstance(data.get("entries"), list):
        raise SgbenchError(f"{path} is not an sgbench baseline (expected kind '{BASELINE_KIND}' with 'entries')")
    return data


@dataclass
class GateResult:
    failures: list[str]
    passed: list[str]
    noise: list[str]  # beyond tolerance, within the baseline's interval
    new: list[str]    # configurations not in the baseline (not a failure)

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        lines = ([f"FAIL {m}" for m in self.failures] + [f"noise {m}" for m in self.noise]
                 + [f"new (not in baseline) {k}" for k in self.new])
        verdict = "passed" if self.ok else f"FAILED: {len(self.failures)} regression(s)"
        lines.append(f"Regression gate {verdict}; {len(self.passed)} check(s) within tolerance, "
                     f"{len(self.noise)} beyond tolerance but within the baseline's 95% interval.")
        return "\n".join(lines)


def check_baseline(boards: Leaderboard | list[Leaderboard], baseline: dict,
                   tolerances: dict[str, float | str] | None = None) -> GateResult:
    """Compare each baseline configuration's metrics with the current leaderboards'."""
    tol = {column_key(k): _check_tolerance(k, v) for k, v in baseline.get("tolerances", {}).items()}
    tol.update(tolerances or {})
    boards = _boards(boards)
    board = boards[0]
    rows = {r.key: r for b in boards for r in b.rows}
    broken = {p.key: p for b in boards for p in b.problems if p.key}
    failures, passed, noise = [], [], []
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
            if worse <= limit + 1e-12:
                passed.append(f"{key}: {shown}")
                continue
            ci = entry.get("ci95", {}).get(metric)
            if ci is not None and ci[0] <= cur <= ci[1]:
                noise.append(f"{key}: {shown}, inside the baseline's 95% interval [{ci[0]:.4g}, {ci[1]:.4g}]")
            else:
                failures.append(f"{key}: {shown}" + (f", outside the baseline's 95% interval [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""))
    new = [k for k in rows if k not in {e["key"] for e in baseline["entries"]}]
    return GateResult(failures, passed, noise, new)


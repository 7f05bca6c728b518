"""Results: run directories -> records -> leaderboards, the regression gate, and every printed table.

    loaded = load_runs(["runs/sg", "runs/cfg"])       # records and problems (sgbench.results.records)
    board = leaderboard(loaded, sort="fd")             # seeds aggregated, intervals, tiers, Pareto front
    print(render(board, "markdown"))                   # table, markdown, csv, json (sgbench.results.render)
    gate = check_baseline(board, read_baseline("baselines/bench-quick.json"))   # sgbench.results.gate
"""

from sgbench.results.gate import DEFAULT_TOLERANCES, GateResult, check_baseline, parse_tolerances, read_baseline, save_baseline
from sgbench.results.leaderboard import Leaderboard, Row, kinds, leaderboard, pareto_front
from sgbench.results.records import (COLUMNS, PRIMARY, Loaded, Problem, RunRecord, column_key, config_key, load_runs, method_label,
                                     sort_help)
from sgbench.results.render import FORMATS, check_format, render

__all__ = [
    "COLUMNS", "DEFAULT_TOLERANCES", "FORMATS", "GateResult", "Leaderboard", "Loaded", "Problem", "Row", "RunRecord",
    "PRIMARY", "check_baseline", "check_format", "kinds", "column_key", "config_key", "leaderboard", "load_runs", "method_label",
    "pareto_front", "parse_tolerances", "read_baseline", "render", "save_baseline", "sort_help",
]

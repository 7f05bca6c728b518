"""The metric registry (docs/design.md, "Metrics"): each metric declared once, and the columns, sort keys,
`--sort` help, the gate's default tolerances and the bench's scorers all derived from it."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from sgbench import results
from sgbench.data.geneval_words import TASKS
from sgbench.evaluation.metrics import BOARDS, REGISTRY, Metric, bench_scorers, board_metrics, register
from sgbench.evaluation.metrics import fid, geneval
from sgbench.evaluation.metrics.base import any_scorer, same_features
from sgbench.results.records import COST_COLUMNS
from sgbench.runs.rundir import MetricRecord
from sgbench.utils.errors import SgbenchError

BASELINES = Path(__file__).resolve().parents[1] / "baselines"


def _record(metric, value=1.0, extractor="animal", reference="animal-all") -> MetricRecord:
    return MetricRecord(metric=metric, value=value, extractor=extractor, reference=reference, num_samples=10, samples_sha256="s")


def test_every_board_has_its_primary_metric_and_each_metric_a_board():
    assert list(BOARDS) == ["class", "t2i"]
    for kind, primary in BOARDS.items():
        assert primary in [m.key for m in board_metrics(kind)]
    assert {m.key for kind in BOARDS for m in board_metrics(kind)} == set(REGISTRY)
    assert [m.key for m in board_metrics("t2i")][1:7] == list(TASKS)  # GenEval's tasks in GenEval's order
    with pytest.raises(ValueError, match="Expected a board kind in"):
        board_metrics("video")


def test_columns_are_the_registry_then_the_costs():
    assert list(results.COLUMNS) == [*REGISTRY, *(c.key for c in COST_COLUMNS)]
    for key, metric in REGISTRY.items():
        column = results.COLUMNS[key]
        assert (column.header, column.fmt, column.help, column.tolerance) == (metric.header, metric.fmt, metric.help, metric.tolerance)
        assert column.better == {"lower": -1, "higher": +1}[metric.better]
    assert results.PRIMARY == BOARDS


def test_default_tolerances_are_the_gates_numbers_and_the_committed_baselines():
    assert list(results.DEFAULT_TOLERANCES.items()) == [
        ("fd", "5%"), ("sfid", "5%"), ("is", "5%"), ("precision", 0.03), ("recall", 0.03), ("class_accuracy", 0.02),
        ("geneval", 0.03), ("hpsv3", "3%"), ("clip_score", "3%"), ("gflops_step", "0.1%")]
    for name in ("bench-quick.json", "bench-t2i-quick.json"):
        stored = json.loads((BASELINES / name).read_text())["tolerances"]
        assert stored == {k: results.DEFAULT_TOLERANCES[k] for k in stored}, name


def test_every_name_and_alias_sorts_and_the_sort_help_lists_them():
    helped = results.sort_help()
    assert helped.startswith("Column (default: FD, or GenEval for text-to-image runs): fd (or fid), sfid, is,")
    assert "class_accuracy (or accuracy, acc)" in helped and helped.endswith("images_per_s (or throughput, ips)")
    for key in results.COLUMNS:
        assert key in helped and results.column_key(key) == key
    for key, metric in REGISTRY.items():
        assert all(results.column_key(alias) == key for alias in metric.aliases)
    assert results.column_key("FID") == "fd" and results.column_key("Two-Object") == "two_object"
    with pytest.raises(SgbenchError, match=r"Unknown column 'speed'; expected one of fd, sfid, .*, images_per_s \(or fid\)"):
        results.column_key("speed")


def test_the_bench_runs_each_boards_scorers_once():
    assert bench_scorers("class") == [fid.EVAL_FID]
    assert bench_scorers("t2i")[0] == geneval.OFFLINE_JUDGE
    assert REGISTRY["kid"].scorer is None  # `eval fid --kid` only
    assert REGISTRY["hpsv3"].scorer is None and REGISTRY["clip_score"].scorer is None  # weights sgbench does not ship


def test_class_metrics_are_read_in_the_boards_feature_space():
    records = [_record("fid", 3.0, reference="other"), _record("fid", 2.0), _record("fid", 1.0, extractor="inception")]
    assert REGISTRY["fd"].find(records, "animal", "animal-all").value == 2.0  # stored as 'fid'
    assert REGISTRY["fd"].find(records, "inception", "other") is None
    assert same_features(records, "fid", "animal", "other").value == 3.0
    assert any_scorer(records + [_record("clip_score", 20.0, "clip-a"), _record("clip_score", 30.0, "clip-b")],
                      "clip_score", "", "").value == 30.0  # the last written


def test_a_geneval_row_never_mixes_judges():
    offline = [_record("geneval", 0.5, geneval.OFFLINE, "p"), _record("geneval/counting", 0.4, geneval.OFFLINE, "p")]
    real = [_record("geneval", 0.7, geneval.REAL, "p")]  # ingested without task records
    assert REGISTRY["geneval"].find(offline, "", "").value == 0.5
    assert REGISTRY["counting"].find(offline, "", "").value == 0.4
    assert REGISTRY["geneval"].find(offline + real, "", "").value == 0.7  # the real evaluator's wins
    assert REGISTRY["counting"].find(offline + real, "", "") is None      # and the offline task score is not shown beside it
    assert REGISTRY["geneval"].find([_record("geneval/counting", 0.4, geneval.OFFLINE)], "", "") is None


def test_declarations_and_registration_refuse_mistakes():
    good = dict(key="m", header="M", better="lower", fmt=".2f", help="h", boards=("class",), read=any_scorer)
    Metric(**good, tolerance="2.5%")
    Metric(**good, tolerance=0)
    for change, message in [({"better": "smaller"}, "better must be one of"), ({"boards": ("video",)}, "boards must be"),
                            ({"boards": ()}, "boards must be"), ({"tolerance": "5"}, "tolerance must be"),
                            ({"tolerance": -1.0}, "tolerance must be"), ({"tolerance": "x%"}, "tolerance must be")]:
        with pytest.raises(ValueError, match=message):
            Metric(**{**good, **change})
    twice = types.SimpleNamespace(__name__="twice", METRICS=(Metric(**{**good, "key": "fid2", "aliases": ("fid",)}),))
    with pytest.raises(ValueError, match="Metric name 'fid' is registered twice"):
        register(fid, twice)


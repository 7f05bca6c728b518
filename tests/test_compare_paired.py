"""`sgbench compare`'s paired comparisons (docs/design.md, "Paired comparisons") on small run directories
scored by the real `eval fid` (shipped Animal extractor, a 200-image reference built here)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.data.animal import load_animal_mnist
from sgbench.evaluation import write_samples
from sgbench.evaluation.evaluate import evaluate
from sgbench.evaluation.paired import per_sample_path, read_per_sample
from sgbench.results.compare import compare_runs
from sgbench.runs.rundir import RunDir
from test_results import make_run

runner = CliRunner()
N = 60


@pytest.fixture(scope="module")
def animal():
    return load_animal_mnist("test")


@pytest.fixture
def ref_dir(tmp_path, monkeypatch, animal):
    monkeypatch.setenv("SGBENCH_REFERENCE_STATS", str(tmp_path / "reference_stats"))
    write_samples(tmp_path / "ref.npz", animal[0][:200])
    assert runner.invoke(app, ["stats", "build", "small", "--from", str(tmp_path / "ref.npz")]).exit_code == 0
    return tmp_path / "reference_stats"


def scored_run(root, name, images, labels, *, method="sg", params=None, seed=0, evaluate_it=True):
    """A run directory (run.json as sampling writes it) holding `images`, evaluated by eval fid."""
    d = make_run(root, name, method=method, params=params, seed=seed, num=len(images), metrics=False)
    write_samples(d / "samples.npz", images, labels)
    if evaluate_it:
        evaluate(d, "small", bootstrap_replicates=50)
    return d


def perturbed(images, others):
    """The same images but the first few replaced: a run that differs from `images` in a few samples only."""
    out = images.copy()
    out[: len(others)] = others
    return out


@pytest.fixture
def pair(tmp_path, ref_dir, animal):
    """Two runs of the same samples' draws: sg (the images) and cfg (the same images but ten)."""
    images, labels = animal[0][400:400 + N], animal[1][400:400 + N]
    root = tmp_path / "runs"
    scored_run(root, "sg", images, labels)
    scored_run(root, "cfg", perturbed(images, animal[0][:10]), labels, method="cfg")
    return root


def test_eval_fid_stores_per_sample_features_bound_to_samples_and_weights(pair):
    run = RunDir(pair / "sg")
    fid = next(r for r in run.metrics() if r.metric == "fid")
    stored = read_per_sample(run.path, "animal", weights_sha256=fid.weights_sha256, samples_sha256=fid.samples_sha256)
    assert per_sample_path(run.path, "animal").is_file()
    assert stored["features"].dtype == np.float32 and len(stored["features"]) == N and stored["correct"].shape == (N,)
    assert read_per_sample(run.path, "animal", weights_sha256="other", samples_sha256=fid.samples_sha256) is None
    assert read_per_sample(run.path, "animal", weights_sha256=fid.weights_sha256, samples_sha256="other") is None


def test_paired_column_delta_is_the_difference_and_narrower_than_either_interval(pair):
    result = compare_runs([pair], fmt="json")
    body = json.loads(result.text)
    rows = {r["config"]: r for r in body["rows"]}
    best, other = body["rows"][0], body["rows"][1]
    assert best["paired"]["against"] == best["config"] and best["paired"]["delta"] == 0.0
    paired = other["paired"]
    assert paired["against"] == best["config"] and paired["metric"] == "fd"
    assert paired["delta"] == pytest.approx(other["fd"] - best["fd"], abs=1e-12)
    width = paired["hi"] - paired["lo"]
    assert width < min(r["fd_hi"] - r["fd_lo"] for r in rows.values())
    assert body["tier_rule"] == "paired" and "Holm" in body["notes"]
    assert result.notes == []

    table = compare_runs([pair], fmt="markdown").text
    assert "ΔFD paired" in table and "reference" in table and f"{paired['delta']:+.2f} [{paired['lo']:+.2f}, {paired['hi']:+.2f}]" in table
    rows_csv = list(csv.DictReader(io.StringIO(compare_runs([pair], fmt="csv").text)))
    assert float(rows_csv[1]["paired_delta"]) == pytest.approx(paired["delta"]) and rows_csv[1]["paired_against"] == best["config"]


def test_against_picks_the_reference_row(pair):
    body = json.loads(compare_runs([pair], fmt="json", against="cfg").text)
    rows = {r["method"]: r for r in body["rows"]}
    assert rows["cfg"]["paired"]["delta"] == 0.0
    assert rows["sg"]["paired"]["against"] == "cfg w=1.5"
    assert rows["sg"]["paired"]["delta"] == pytest.approx(rows["sg"]["fd"] - rows["cfg"]["fd"], abs=1e-12)
    bad = runner.invoke(app, ["compare", str(pair), "--against", "apg"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "Expected --against to name a row" in bad.output


def test_runs_of_other_seeds_are_not_paired_and_an_explicit_against_them_is_an_error(pair, animal):
    images, labels = animal[0][400:400 + N], animal[1][400:400 + N]
    root = pair
    scored_run(root, "unguided", perturbed(images, animal[0][10:20]), labels, method="unguided", seed=1)
    result = compare_runs([root], fmt="json")
    body = json.loads(result.text)
    rows = {r["method"]: r for r in body["rows"]}
    assert rows["unguided"]["paired"] is None and rows["cfg"]["paired"] is not None and rows["sg"]["paired"] is not None
    assert body["tier_rule"] == "overlap" and "intervals overlap" in body["notes"]  # not every row paired: the old tiers
    assert len(result.notes) == 1 and result.notes[0].startswith("unguided ") and "differ in 'seed'" in result.notes[0]
    bad = runner.invoke(app, ["compare", str(root), "--against", "unguided"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and "Cannot pair with --against 'unguided'" in bad.output


def test_a_stale_per_sample_file_is_refused_and_old_runs_render_as_before(pair):
    root = pair
    before = compare_runs([root], fmt="json").text
    for name in ("sg", "cfg"):
        per_sample_path(root / name, "animal").unlink()
    plain = compare_runs([root], fmt="json")
    assert "paired" not in plain.text and "tier_rule" not in plain.text and plain.notes == []  # as before pairing existed
    for name in ("sg", "cfg"):  # eval fid stores them again although its metrics are reused
        assert runner.invoke(app, ["eval", "fid", str(root / name), "--ref", "small", "--bootstrap", "50"]).exit_code == 0
    assert compare_runs([root], fmt="json").text == before
    per_sample_path(root / "sg", "animal").write_bytes(per_sample_path(root / "cfg", "animal").read_bytes())  # bound to other samples
    result = compare_runs([root], fmt="json")
    assert "paired" not in result.text
    assert len(result.notes) == 1 and result.notes[0].startswith("sg ") and "no per-sample features" in result.notes[0]

"""`sgbench compare` and the regression gate, on fake but structurally real run directories."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sgbench import results
from sgbench.cli import app
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_savez
from sgbench.results.leaderboard import Row, assign_tiers
from sgbench.results.records import load_run
from sgbench.runs.rundir import MetricRecord, RunDir, RunInfo

REF, EXTRACTOR = "animal-all", "animal"
DEFAULTS = {"unguided": {}, "cfg": {"scale": 1.5, "interval": [0.0, 1.0]},
            "sg": {"scale": 1.5, "gs": "0.5", "gw": "0.9", "interval": [0.0, 1.0]}}


def make_run(root: Path, name: str, *, method: str = "sg", params: dict | None = None, seed: int = 0, fd: float = 10.0,
             acc: float = 0.8, gflops: float = 1.0, ips: float = 50.0, steps: int = 10, num: int = 20,
             checkpoint: str = "ckpt/animal-routed.safetensors", metrics: bool = True, samples: bool = True,
             reference: str = REF, extractor: str = EXTRACTOR, ci: float | None = None) -> Path:
    """A run directory written through sgbench.runs.rundir as sample_run + evaluate write it (the numbers are
    made up; `ci` gives every metric an interval of +-ci)."""
    d = root / name
    run = RunDir(d)
    params = {**DEFAULTS[method], **(params or {})}
    by_conv = lambda g: {"paper": g, "macs": 1.1 * g, "flops": 2.2 * g}  # noqa: E731
    config = {"checkpoint": checkpoint, "out": str(d), "guidance": method, "guidance_params": {}, "guide": None,
              "num": num, "batch_size": num, "steps": steps, "solver": "euler", "seed": seed, "labels": "balanced", "device": "cpu"}
    identity = {**config, "run_format": 2}
    run.claim(identity)
    if samples:
        atomic_savez(run.samples, arr_0=np.zeros((num, 32, 32, 1), np.uint8), labels=np.arange(num) % 10)
    run.write_info(RunInfo(
        config=config, identity=identity, guidance={"name": method, "params": params},
        model={"checkpoint": checkpoint, "sha256": "0" * 64, "config": {"name": "Animal-T/4"}}, guide=None,
        flops={"num_evals": steps,
               "per_image": {"shared_prefix": by_conv(0.9 * gflops * steps), "no_sharing": by_conv(gflops * steps)},
               "delta_to_unguided_per_image": {"no_sharing": by_conv((gflops - 1.0) * steps)}},
        num_samples=num, world_size=1, seed=seed,
        timing={"wall_time_s": num / ips, "images_per_s": ips, "device": "cpu", "threads": 1, "peak_memory_mb": 1.0,
                "generated_this_invocation": num},
        environment={}, created="2026-01-01T00:00:00"))
    if metrics and samples:
        values = {"fid": fd, "is": 3.0, "is_std": 0.1, "precision": 0.6, "recall": 0.5, "class_accuracy": acc}
        sha = run.samples_sha256()
        run.write_metrics([MetricRecord(metric=m, value=v, extractor=extractor, reference=reference, num_samples=num,
                                        samples_sha256=sha, ci95=[v - ci, v + ci] if ci is not None else None, weights_sha256="e5")
                           for m, v in values.items()])
    return d


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "unguided", method="unguided", fd=20.0, acc=0.6, gflops=1.0, ips=100)
    make_run(root, "cfg", method="cfg", fd=12.0, acc=0.9, gflops=2.0, ips=50)
    make_run(root, "sg-s0", fd=11.0, acc=0.85, gflops=0.8, ips=120, seed=0)
    make_run(root, "sg-s1", fd=13.0, acc=0.87, gflops=0.8, ips=110, seed=1)
    make_run(root, "sg-strong", params={"gs": "0.2", "gw": "0.7", "scale": 1.7}, fd=9.0, gflops=1.5, ips=70)
    make_run(root, "cfg-bad", method="cfg", params={"scale": 4.0}, fd=30.0, gflops=2.0)  # dominated
    return root


def board(root, **kw):
    return results.leaderboard(results.load_runs([root]), **kw)


def test_rows_seeds_pareto_and_sorting(runs):
    b = board(runs)
    assert [r.label for r in b.rows] == ["sg gs=0.2 gw=0.7 w=1.7", "cfg w=1.5", "sg gs=0.5 gw=0.9 w=1.5", "unguided", "cfg w=4"]
    sg = b.rows[2]
    assert (sg.n, sg.seeds, sg.mean["fd"]) == (2, [0, 1], pytest.approx(12.0))
    assert sg.std["fd"] == pytest.approx(np.std([11.0, 13.0], ddof=1))
    assert sg.mean["gflops_step"] == pytest.approx(0.8) and sg.mean["gflops_image"] == pytest.approx(7.2)
    assert sg.mean["gflops_step_run"] == pytest.approx(0.72) and sg.mean["delta_gflops_step"] == pytest.approx(-0.2)
    # two seeds: the interval is the mean's 95% t-interval across them (t = 12.706 for n = 2)
    assert sg.ci95["fd"] == pytest.approx([12.0 - 12.706, 12.0 + 12.706])  # std sqrt(2), n 2
    # Pareto front of (FD, GFLOPs): sg 0.5/0.9 (cheapest, FD 12) and sg 0.2/0.7 (best FD); cfg w=1.5 has
    # FD 12 at 2 GFLOPs, dominated by sg 0.5/0.9 (FD 12 at 0.8).
    assert {r.label for r in b.rows if r.pareto} == {"sg gs=0.5 gw=0.9 w=1.5", "sg gs=0.2 gw=0.7 w=1.7"}
    assert [r.label for r in board(runs, sort="gflops_step").rows][0] == "sg gs=0.5 gw=0.9 w=1.5"
    assert [r.label for r in board(runs, sort="class_accuracy").rows][0] == "cfg w=1.5"  # higher is better: first
    assert [r.label for r in board(runs, sort="images_per_s").rows][0] == "sg gs=0.5 gw=0.9 w=1.5"
    with pytest.raises(SgbenchError, match="Unknown column 'speed'"):
        board(runs, sort="speed")


def _row(fd, cost, ci=None) -> Row:
    return Row("b", f"{fd}@{cost}", "k", "sg", {}, 1, [0], {"fd": fd, "gflops_image": cost}, {}, {"fd": ci}, [])


def test_pareto_front_ties_and_intervals():
    # without intervals: the plain front (<= in both, < in one); equal points both stay
    rows = [_row(1, 2), _row(1, 2), _row(2, 1), _row(2, 2)]
    assert results.pareto_front(rows) == [True, True, True, False]
    # with intervals: a cheaper row whose FD cannot be told apart dominates a better-looking costly one,
    # and a clearly better one (disjoint intervals) stays on the front
    rows = [_row(10.0, 1.0, [9.0, 11.0]), _row(9.5, 2.0, [8.5, 10.5]), _row(5.0, 3.0, [4.5, 5.5])]
    assert results.pareto_front(rows) == [True, False, True]


def test_tiers_group_overlapping_intervals():
    rows = [_row(5.0, 1, [4.0, 6.0]), _row(5.5, 1, [5.8, 7.0]), _row(6.5, 1, [6.1, 7.2]), _row(8.0, 1, [7.1, 9.0]), _row(8.1, 1, None)]
    assign_tiers(rows, "fd")
    # 5.5 overlaps the best's [4, 6]; 6.5 does not -> tier 2, and 8.0 overlaps 6.5's interval; 8.1 has none
    assert [r.tier for r in rows] == [1, 1, 2, 2, 3]


def test_broken_and_partial_runs_are_listed_with_reasons(runs):
    make_run(runs, "no-metrics", metrics=False)
    make_run(runs, "no-samples", samples=False)
    make_run(runs, "other-ref", reference="mnist-test")
    unfinished = RunDir(runs / "unfinished")
    unfinished.claim({"run_format": 2})
    unfinished.write_shard([0, 1], np.zeros((2, 32, 32, 1), np.uint8))
    bad = make_run(runs, "bad-json")
    (bad / "run.json").write_text("{not json")
    (runs / "empty").mkdir()  # not a run: ignored when expanding a folder, listed when named explicitly
    loaded = results.load_runs([runs, runs / "empty"])
    reasons = {p.path.name: (p.status, p.reason) for p in loaded.problems}
    assert reasons["no-metrics"][0] == "partial" and "not evaluated" in reasons["no-metrics"][1]
    assert reasons["no-samples"][0] == "partial" and "sampling unfinished" in reasons["no-samples"][1]
    assert "no metrics for extractor animal / reference animal-all (has: animal/mnist-test)" in reasons["other-ref"][1]
    assert reasons["unfinished"][0] == "partial" and "1 shards" in reasons["unfinished"][1]
    assert reasons["bad-json"][0] == "broken" and "run.json is unreadable" in reasons["bad-json"][1]
    assert reasons["empty"] == ("broken", "not a run directory (no sample_config.json)")
    assert len(loaded.records) == 6
    b = results.leaderboard(loaded)
    for fmt in results.FORMATS:  # every format shows them
        text = results.render(b, fmt)
        assert "other-ref" in text and "unfinished" in text


def test_metrics_of_other_samples_are_not_shown(tmp_path):
    """metrics.json names the sha256 of the samples it scored: resampled or broken samples make it stale."""
    d = make_run(tmp_path, "r", num=20)
    assert isinstance(load_run(RunDir(d), extractor=EXTRACTOR, reference=REF), results.RunRecord)
    atomic_savez(d / "samples.npz", arr_0=np.ones((20, 32, 32, 1), np.uint8))  # other samples
    p = load_run(RunDir(d), extractor=EXTRACTOR, reference=REF)
    assert isinstance(p, results.Problem) and "metrics were computed on other samples" in p.reason
    (d / "samples.npz").write_bytes(b"broken")
    p = load_run(RunDir(d), extractor=EXTRACTOR, reference=REF)
    assert isinstance(p, results.Problem) and "other samples" in p.reason


def test_formats_parse(runs):
    b = board(runs)
    data = json.loads(results.render(b, "json"))
    assert data["reference"] == REF and data["columns"]["fd"]["header"] == "FD" and len(data["rows"]) == 5
    assert data["rows"][2]["fd_std"] == pytest.approx(np.std([11.0, 13.0], ddof=1)) and data["rows"][2]["n"] == 2
    rows = list(csv.DictReader(io.StringIO(results.render(b, "csv"))))
    assert [r["config"] for r in rows][:2] == ["sg gs=0.2 gw=0.7 w=1.7", "cfg w=1.5"]
    assert float(rows[1]["fd"]) == 12.0 and rows[0]["pareto"] == "True"
    md = results.render(b, "markdown").splitlines()
    header = next(i for i, line in enumerate(md) if line.startswith("| "))
    assert "FD" in md[header] and "GFLOPs/step" in md[header] and md[header + 1].startswith("|:--")
    assert f"12.00 ± {12.706 * np.std([11.0, 13.0], ddof=1) / np.sqrt(2):.2f}" in results.render(b, "markdown")
    assert "sg gs=0.5 gw=0.9 w=1.5" in results.render(b, "table")


def test_fid_header_for_inception(tmp_path):
    make_run(tmp_path, "r", extractor="inception", reference="VIRTUAL_imagenet256")
    b = results.leaderboard(results.load_runs([tmp_path]))
    assert b.fd_header == "FID" and (b.extractor, b.reference) == ("inception", "VIRTUAL_imagenet256")


def test_labels_hide_what_does_not_run():
    assert results.method_label("sg", {"scale": 1.0, "gs": "0.5", "gw": "0.75", "interval": [0.0, 1.0]}) == "sg gs=0.5 w=1"
    assert results.method_label("cfg", {"scale": 2.0, "interval": [0.2, 0.8]}) == "cfg t=0.2:0.8 w=2"


# ----------------------------------------------------------------------------------------------------
# CLI and regression gate

runner = CliRunner()


def test_cli_formats_and_output(runs, tmp_path):
    r = runner.invoke(app, ["compare", str(runs), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["rows"]) == 5
    out = tmp_path / "lb.csv"
    r = runner.invoke(app, ["compare", str(runs), "--format", "csv", "--file", str(out), "--sort", "fid"])
    assert r.exit_code == 0 and len(list(csv.DictReader(out.open()))) == 5
    r = runner.invoke(app, ["compare", str(runs), "--format", "xml"])
    assert r.exit_code == 2 and "Unknown --format 'xml'" in r.output


def test_compare_refuses_a_folder_that_holds_no_run(tmp_path):
    from test_cli import one_line_error

    (tmp_path / "empty").mkdir()
    one_line_error(runner.invoke(app, ["compare", str(tmp_path / "empty")]),
                   f"Expected a run directory or a folder of run directories but {tmp_path / 'empty'} holds no run: "
                   "a run directory holds sample_config.json, samples.npz and run.json (written by `sgbench sample`)")
    # a stray samples.npz makes the folder look like a run, so the runs one level down are not searched
    make_run(tmp_path / "runs", "cfg", method="cfg")
    atomic_savez(tmp_path / "runs" / "samples.npz", arr_0=np.zeros((2, 8, 8, 1), np.uint8))
    one_line_error(runner.invoke(app, ["compare", str(tmp_path / "runs")]), "holds no run", f"did you mean {tmp_path / 'runs'}/*?")
    assert runner.invoke(app, ["compare", str(tmp_path / "runs" / "cfg")]).exit_code == 0


def test_gate_passes_unchanged_and_fails_perturbed(runs, tmp_path):
    base = tmp_path / "baseline.json"
    r = runner.invoke(app, ["compare", str(runs), "--save-baseline", str(base), "--tolerance", "fid=0.5"])
    assert r.exit_code == 0, r.output
    saved = json.loads(base.read_text())
    assert saved["tolerances"]["fd"] == 0.5 and saved["tolerances"]["class_accuracy"] == 0.02
    assert len(saved["entries"]) == 5 and all(" | " in e["key"] for e in saved["entries"])

    r = runner.invoke(app, ["compare", str(runs), "--baseline", str(base)])
    assert r.exit_code == 0, r.output
    assert "Regression gate passed" in r.output

    # Perturb: cfg's FD worsens by 0.8 (> 0.5), its accuracy improves (fine); the baseline is keyed by
    # configuration, so renaming a directory changes nothing.
    _shift_metrics(runs / "cfg", {"fid": 0.8, "class_accuracy": 0.05})
    (runs / "cfg").rename(runs / "renamed")
    r = runner.invoke(app, ["compare", str(runs), "--baseline", str(base)])
    assert r.exit_code == 1
    assert "FAIL animal-routed (Animal-T/4) | cfg w=1.5 | euler 10 steps | n=20 balanced: FD 12 -> 12.8 (+0.8, tolerance 0.5)" in r.output
    assert "Class acc." not in r.output.split("FAIL")[1].split("\n")[0]
    assert "1 regression" in r.output
    # A looser tolerance on the command line passes it; a better FD always passes.
    assert runner.invoke(app, ["compare", str(runs), "--baseline", str(base), "-t", "fid=1"]).exit_code == 0
    assert runner.invoke(app, ["compare", str(runs), "--baseline", str(base), "-t", "fid=10%"]).exit_code == 0


def _shift_metrics(run_dir: Path, shifts: dict) -> None:
    m = json.loads((run_dir / "metrics.json").read_text())
    for rec in m["records"]:
        rec["value"] += shifts.get(rec["metric"], 0.0)
    (run_dir / "metrics.json").write_text(json.dumps(m))


def test_gate_fails_only_beyond_the_baselines_interval(tmp_path):
    """A move beyond the tolerance but inside the baseline's 95% interval is noise, not a regression."""
    make_run(tmp_path / "runs", "cfg", method="cfg", fd=12.0, ci=1.0)
    base = tmp_path / "baseline.json"
    assert runner.invoke(app, ["compare", str(tmp_path / "runs"), "--save-baseline", str(base), "-t", "fid=0.5"]).exit_code == 0
    assert json.loads(base.read_text())["entries"][0]["ci95"]["fd"] == [11.0, 13.0]
    _shift_metrics(tmp_path / "runs" / "cfg", {"fid": 0.8})
    r = runner.invoke(app, ["compare", str(tmp_path / "runs"), "--baseline", str(base)])
    assert r.exit_code == 0 and "noise" in r.output and "inside the baseline's 95% interval [11, 13]" in r.output
    _shift_metrics(tmp_path / "runs" / "cfg", {"fid": 0.5})  # 13.3: outside
    r = runner.invoke(app, ["compare", str(tmp_path / "runs"), "--baseline", str(base)])
    assert r.exit_code == 1 and "outside the baseline's 95% interval [11, 13]" in r.output


def test_gate_fails_on_missing_or_broken_configuration(runs, tmp_path):
    base = tmp_path / "baseline.json"
    assert runner.invoke(app, ["compare", str(runs), "--save-baseline", str(base)]).exit_code == 0
    (runs / "cfg-bad" / "metrics.json").unlink()  # now partial
    import shutil

    shutil.rmtree(runs / "unguided")
    r = runner.invoke(app, ["compare", str(runs), "--baseline", str(base)])
    assert r.exit_code == 1
    assert "cfg w=4 | euler 10 steps | n=20 balanced: missing (partial: not evaluated" in r.output
    assert "unguided | euler 10 steps | n=20 balanced: missing (no run of this configuration was given)" in r.output


def test_gate_errors(runs, tmp_path):
    r = runner.invoke(app, ["compare", str(runs), "--baseline", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "Baseline file" in r.output and "does not exist" in r.output
    (tmp_path / "x.json").write_text("[]")
    r = runner.invoke(app, ["compare", str(runs), "--baseline", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "is not an sgbench baseline" in r.output
    r = runner.invoke(app, ["compare", str(runs), "--save-baseline", str(tmp_path / "b.json"), "-t", "fid"])
    assert r.exit_code == 2 and "Expected --tolerance METRIC=VALUE" in r.output
    r = runner.invoke(app, ["compare", str(runs), "--save-baseline", str(tmp_path / "b.json"), "-t", "speed=1"])
    assert r.exit_code == 2 and "Unknown column 'speed'" in r.output
    make_run(runs, "partial", metrics=False)
    r = runner.invoke(app, ["compare", str(runs), "--save-baseline", str(tmp_path / "b.json")])
    assert r.exit_code == 2 and "Refusing to save a baseline with broken or partial runs" in r.output


def test_cli_plots(runs, tmp_path):
    r = runner.invoke(app, ["compare", str(runs), "--plots", str(tmp_path / "figs")])
    assert r.exit_code == 0, r.output
    names = {p.name for p in (tmp_path / "figs").glob("*.png")}
    # sg at two (gs, gw, w) cells -> Fig. 6 and A1 heatmaps; cfg at two scales -> FD against w
    assert names == {"fd_heatmap_animal-routed.png", "throughput_animal-routed.png", "cfg_scale_animal-routed.png"}


def _text_board(rows: list[tuple[str, dict, float]], backbone: str = "scenes-routed (Scenes-T/6)") -> results.Leaderboard:
    """A text-to-image board of hand-made rows (method, parameters, GenEval overall)."""
    def row(method, params, geneval):
        mean = {**{k: None for k in results.COLUMNS}, "geneval": geneval, "gflops_step": 1.0, "gflops_image": 10.0, "images_per_s": 5.0}
        return Row(backbone, method, f"{method} {params}", method, params, 1, [0], mean, {k: None for k in results.COLUMNS}, {}, [])

    return results.Leaderboard([row(*r) for r in rows], [], None, None, sort="geneval", columns=["geneval"], kind="t2i")


def test_every_board_gets_its_figures(runs, tmp_path):
    """Class and text-to-image runs are separate boards: each gets its own figures over its own quality
    (FD, GenEval), and a board whose runs support no figure is named with the reason."""
    from sgbench.results.plots import plot_boards

    sg = {"interval": [0.0, 1.0], "gw": "0.7", "scale": 2.0}
    text = _text_board([("cfg", {"scale": 2.0, "interval": [0.0, 1.0]}, 0.40), ("cfg", {"scale": 3.0, "interval": [0.0, 1.0]}, 0.50),
                        ("sg", {**sg, "gs": "0.2"}, 0.45), ("sg", {**sg, "gs": "0.4"}, 0.42)])
    figures = plot_boards([board(runs), text], tmp_path / "figs")
    assert {p.name for p in figures.written} == {
        "fd_heatmap_animal-routed.png", "throughput_animal-routed.png", "cfg_scale_animal-routed.png",
        "geneval_heatmap_scenes-routed.png", "throughput_scenes-routed.png", "cfg_scale_scenes-routed.png"}
    assert figures.missing == [] and all(p.is_file() for p in figures.written)
    figures = plot_boards([board(runs), _text_board([("unguided", {}, 0.3)])], tmp_path / "more")
    assert len(figures.written) == 3 and len(figures.missing) == 1
    assert figures.missing[0].startswith("No figure for the text-to-image board (1 configurations): a figure needs")


def test_compare_runs_is_one_library_call(runs, tmp_path):
    """What `sgbench compare` prints and writes, without a terminal."""
    from sgbench.results.compare import compare_runs

    out = compare_runs([runs], fmt="csv", file=tmp_path / "lb.csv", plots=tmp_path / "figs", save_baseline_to=tmp_path / "b.json")
    assert out.file == tmp_path / "lb.csv" and out.file.read_text() == out.text and out.gate is None
    assert out.notes[0] == f"Wrote {tmp_path / 'lb.csv'} (5 configurations, 0 broken or partial runs)"
    assert out.notes[1:4] == [f"Wrote {tmp_path / 'figs' / name}.png" for name in ("fd_heatmap_animal-routed", "throughput_animal-routed",
                                                                                   "cfg_scale_animal-routed")]
    assert out.notes[-1] == f"Wrote baseline {tmp_path / 'b.json'} (5 configurations)"
    gated = compare_runs([runs], baseline=tmp_path / "b.json")
    assert gated.gate.ok and gated.file is None and gated.notes == [] and gated.text == results.render(board(runs), "table")


# ----------------------------------------------------------------------------------------------------
# The paper's tables beside the runs


def test_reference_paper_is_a_separate_labelled_block_in_every_format(runs):
    from sgbench.results.paper import reference_tables

    b = board(runs)
    tables = reference_tables("paper")
    assert [t.number for t in tables] == [2]
    data = json.loads(results.render(b, "json", paper=tables))
    assert len(data["rows"]) == 5 and data["reference"] == REF  # the runs, ranked as without the block
    assert [r["label"] for r in data["paper"]][:2] == ["SiT-XL/2 + routing", "+CFG"] and len(data["paper"]) == 6
    sg = next(r for r in data["paper"] if r["label"] == "+SG_FLOPS (Ours)")
    assert sg["table"] == 2 and sg["backbone"] == "SiT-XL/2" and sg["epochs"] == 400 and "FID-50K with ADM" in sg["protocol"]
    assert sg["metrics"] == {"fid": 2.14, "gflops": 97.67, "delta_gflops": -16.75} and sg["source"] == "paper"
    rows = list(csv.DictReader(io.StringIO(results.render(b, "csv", paper=tables))))
    measured, paper = [r for r in rows if r["status"] == "ok"], [r for r in rows if r["status"] == "paper"]
    assert len(measured) == 5 and all(r["table"] == "" for r in measured)
    assert [(r["config"], r["fd"], r["gflops_step"], r["table"], r["epochs"]) for r in paper][4] == ("+SG_FLOPS (Ours)", "2.14", "97.67", "2", "400")
    assert all(r["tier"] == "" and r["pareto"] == "" for r in paper)  # never ranked
    md = results.render(b, "markdown", paper=tables)
    assert md.index("Reference: the paper's reported numbers") > md.index("sg gs=0.5 gw=0.9 w=1.5")
    assert "| paper T2 | +SG_FLOPS (Ours) | SiT-XL/2 | routing | 400 | gs=0.5 gw=0.9 | 2.14 | 97.67 | -16.75 |" in md
    assert "- Table 2: FID-50K with ADM's evaluator" in md
    text = results.render(b, "table", paper=tables)
    assert "not measured here and not ranked" in text and "+SG_FID (Ours)" in text and "Table 2: FID-50K" in text
    assert results.render(b, "json") == results.render(b, "json", paper=None)  # no block unless asked


def test_reference_tables_follow_the_runs_or_the_request():
    from sgbench.results.paper import reference_tables

    assert [t.number for t in reference_tables("paper", masking=True, inception=True)] == [1, 2, 3]
    assert [t.number for t in reference_tables("paper:3,1")] == [3, 1]
    for bad, message in [("papers", "Expected --reference paper or paper:N,M"), ("paper:", "Expected --reference paper"),
                         ("paper:x", "with table numbers"), ("paper:9", "no Table 9")]:
        with pytest.raises(SgbenchError, match=message):
            reference_tables(bad)


def test_cli_compare_reference_paper(runs, tmp_path):
    make_run(tmp_path / "masked", "cfg", method="cfg", fd=12.0, gflops=2.0, checkpoint="ckpt/animal-masked.safetensors")
    info = RunDir(tmp_path / "masked" / "cfg").info()
    info.model["config"]["masking"] = {"rate": 0.5}
    RunDir(tmp_path / "masked" / "cfg").write_info(info)
    r = runner.invoke(app, ["compare", str(runs), str(tmp_path / "masked"), "--reference", "paper", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert sorted({row["table"] for row in json.loads(r.stdout)["paper"]}) == [1, 2]  # a masked backbone brings Table 1
    r = runner.invoke(app, ["compare", str(runs), "--reference", "table2"])
    assert r.exit_code == 2 and "Expected --reference paper or paper:N,M" in r.output


def test_a_second_run_of_the_same_configuration_and_seed_counts_once(tmp_path):
    """Two folders holding the same draw (e.g. a tuned board and a budget's board sharing a run) are one seed:
    averaging them would report n = 2 with zero spread. The copy is named under the table, not averaged."""
    make_run(tmp_path / "a", "sg", fd=10.0, ci=1.0)
    make_run(tmp_path / "b", "sg", fd=10.0, ci=1.0)
    make_run(tmp_path / "a", "sg-seed1", seed=1, fd=12.0, ci=1.0)
    board = results.leaderboard(results.load_runs([tmp_path / "a", tmp_path / "b"]))
    (row,) = board.rows
    assert row.n == 2 and row.seeds == [0, 1] and row.mean["fd"] == pytest.approx(11.0)
    (dup,) = [p for p in board.problems if p.status == "duplicate"]
    assert dup.path == tmp_path / "b" / "sg" and "the same configuration and seed 0" in dup.reason

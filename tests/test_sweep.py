"""`sgbench sweep`: cells, skipping invalid ones, resuming finished ones, figures."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sgbench.workflows import jobs, sweep
from sgbench.cli import app
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import atomic_savez
from sgbench.runs.rundir import MetricRecord, RunDir, State
from sgbench.workflows.sweep import SweepLog, parse_grid, plan_sweep, run_sweep


def test_plan_skips_invalid_cells_with_the_reason(tmp_path):
    cells = plan_sweep(tmp_path, grid=parse_grid(["gs=0,0.5", "gw=0.5,0.9", "scale=1.5"]), sparsity=[0.0, 0.75])
    names = [c.out.name for c in cells if c.skip is None]
    assert names == ["sg-gs0-gw0.5-scale1.5-seed0", "sg-gs0-gw0.9-scale1.5-seed0", "sg-gs0.5-gw0.9-scale1.5-seed0",
                     "sg-scale1-gs0-gw0.5-seed0", "sg-scale1-gs0.75-gw0.875-seed0"]
    (bad,) = [c for c in cells if c.skip]
    assert bad.params == {"gs": 0.5, "gw": 0.5, "scale": 1.5} and "Expected 0 <= gs < gw < 1" in bad.skip
    # any method's parameters, fixed ones and several seeds
    cells = plan_sweep(tmp_path, method="cfg", grid={"scale": [1.0, 2.0]}, fixed={"interval": "0.2:0.8"}, seeds=[0, 1])
    assert [c.out.name for c in cells][:2] == ["cfg-interval0.2_0.8-scale1-seed0", "cfg-interval0.2_0.8-scale1-seed1"]
    assert all(c.skip is None for c in cells) and len(cells) == 4
    assert plan_sweep(tmp_path, method="cfg", grid={"gs": [0.5]})[0].skip.startswith("Guidance 'cfg' does not take --gs")


def test_grid_errors(tmp_path):
    with pytest.raises(SgbenchError, match="Expected --grid NAME=V1,V2"):
        parse_grid(["gs"])
    with pytest.raises(SgbenchError, match="the sweep is empty"):
        plan_sweep(tmp_path)
    with pytest.raises(SgbenchError, match=r"both swept and fixed"):
        plan_sweep(tmp_path, grid={"scale": [1.5]}, fixed={"scale": 2})


def test_finished_cells_are_not_redone(tmp_path, monkeypatch):
    """Fake sampler and evaluator count calls: a rerun samples nothing; a sampled but unevaluated cell is
    only evaluated; more samples mean another identity, so the cell is sampled again."""
    calls = {"sample": [], "evaluate": []}

    def fake_sample(config, progress=True):
        run = RunDir(config.out)
        run.claim(config.identity())
        atomic_savez(run.samples, arr_0=np.zeros((config.num, 32, 32, 1), np.uint8))
        (run.path / "run.json").write_text(json.dumps({"version": 2}))
        calls["sample"].append(run.path.name)
        return run.path

    def fake_evaluate(run_dir, ref, extractor):
        run = RunDir(run_dir)
        run.write_metrics([MetricRecord("fid", 1.0, extractor, ref, _num(run), run.samples_sha256())])
        calls["evaluate"].append(run.path.name)

    def _num(run):
        with np.load(run.samples) as f:
            return len(f["arr_0"])

    monkeypatch.setattr(jobs, "sample_run", fake_sample)
    monkeypatch.setattr(importlib.import_module("sgbench.evaluation.evaluate"), "evaluate", fake_evaluate)  # the `eval fid` scorer's
    monkeypatch.setattr(sweep, "check_jobs", lambda configs, evaluation: None)
    monkeypatch.setattr(RunDir, "state", lambda self: State.SAMPLED if self.samples.is_file() else State.EMPTY)
    monkeypatch.setattr(RunDir, "check_samples_unchanged", lambda self: None)  # the fake run.json records no samples
    from sgbench.models.checkpoint import save_model
    from sgbench.models.sit import SiT, preset

    ckpt = tmp_path / "ckpt.safetensors"  # a run's identity reads the model's config (pixels or latents?)
    save_model(SiT(preset("Tiny-test")), ckpt)
    kw = dict(ref="animal-all", grid={"gs": [0.0, 0.9], "gw": [0.9]}, fixed={"scale": 1.5}, num=4, progress=False)
    log = SweepLog()
    dirs = run_sweep(ckpt, tmp_path, log=log, **kw)
    assert [d.name for d in dirs] == ["sg-scale1.5-gs0-gw0.9-seed0"] and calls["sample"] == [dirs[0].name]
    assert len(log.skipped) == 1 and len(log.ran) == 1

    (dirs[0] / "metrics.json").unlink()  # sampled, not evaluated
    log = SweepLog()
    run_sweep(ckpt, tmp_path, log=log, **kw)
    assert len(calls["sample"]) == 1 and len(calls["evaluate"]) == 2 and log.ran == dirs

    log = SweepLog()
    run_sweep(ckpt, tmp_path, log=log, **kw)  # finished: nothing runs
    assert (len(calls["sample"]), len(calls["evaluate"])) == (1, 2) and log.resumed == dirs and not log.ran

    import shutil

    shutil.rmtree(dirs[0])
    log = SweepLog()
    run_sweep(ckpt, tmp_path, log=log, **{**kw, "num": 8})  # more samples: sampled again
    assert len(calls["sample"]) == 2 and log.ran == dirs


def _has_animal_reference() -> bool:
    try:
        from sgbench.evaluation import read_manifest

        return "animal-all" in read_manifest()
    except Exception:  # evaluation not importable yet
        return False


def _toy(path, input_size=32):
    from sgbench.models.checkpoint import save_model
    from sgbench.models.sit import Route, SiT, preset

    save_model(SiT(preset("Tiny-test", routes=(Route(1, 2, 0.5),), input_size=input_size, patch_size=8, num_classes=10)), path)
    return path


def _one_line_error(result, message: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == [f"Error: {message}"], result.output


def test_a_bad_grid_value_refuses_the_whole_sweep(tmp_path):
    with pytest.raises(SgbenchError) as e:
        plan_sweep(tmp_path, method="sg", grid=parse_grid(["scale=2,abc"]))
    assert str(e.value) == "Expected a number for sg's scale but got 'abc' (in --grid scale=2,abc); no cell was run"
    with pytest.raises(SgbenchError, match=r"Expected a sparsity schedule .* but got 'cos:0:1' \(in --grid gs=0,cos:0:1\)"):
        plan_sweep(tmp_path, grid=parse_grid(["gs=0,cos:0:1"]))
    with pytest.raises(SgbenchError, match=r"Expected a guidance interval as T_LO:T_HI but got 'early' \(in --interval early\)"):
        plan_sweep(tmp_path, method="cfg", grid={"scale": [2.0]}, fixed={"interval": "early"})


def test_a_bad_grid_value_is_refused_before_sampling(tmp_path):
    ckpt = _toy(tmp_path / "toy.safetensors")
    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["sweep", "-c", str(ckpt), "--ref", "animal-all", "--grid", "scale=2,abc", "-n", "10", "-o", str(out)])
    _one_line_error(r, "Expected a number for sg's scale but got 'abc' (in --grid scale=2,abc); no cell was run")
    assert not out.exists()


@pytest.mark.skipif(not _has_animal_reference(), reason="needs sgbench.evaluation and reference_stats/animal-all")
def test_an_unwritable_figures_folder_is_refused_before_sampling(tmp_path):
    ckpt = _toy(tmp_path / "toy.safetensors")
    out = tmp_path / "s"
    base = ["sweep", "-c", str(ckpt), "--ref", "animal-all", "-g", "cfg", "--grid", "scale=2", "-n", "10", "--steps", "2", "-o", str(out)]
    r = CliRunner().invoke(app, [*base, "--figures", str(ckpt / "figures")])
    _one_line_error(r, f"Cannot write the figures (--figures) to {ckpt / 'figures'} ({ckpt} is not a folder); choose another folder")
    r = CliRunner().invoke(app, [*base, "--figures", "/proc/sgbench-figures"])
    assert r.exit_code == 2 and r.output.startswith("Error: Cannot write the figures (--figures) to /proc/sgbench-figures ("), r.output
    assert not out.exists()


@pytest.mark.skipif(not _has_animal_reference(), reason="needs sgbench.evaluation and reference_stats/animal-all")
def test_a_reference_at_another_resolution_is_refused_before_sampling(tmp_path):
    ckpt = _toy(tmp_path / "toy16.safetensors", input_size=16)
    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["sweep", "-c", str(ckpt), "--ref", "animal-all", "-g", "cfg", "--grid", "scale=2", "-n", "10",
                                 "-o", str(out)])
    _one_line_error(r, f"Expected samples at the reference's resolution 32x32 but {ckpt} makes 16x16 images "
                       "(reference 'animal-all'); choose a --ref built at 16x16")
    assert not out.exists()


@pytest.mark.skipif(not _has_animal_reference(), reason="needs sgbench.evaluation and reference_stats/animal-all")
def test_a_finished_cell_whose_samples_changed_is_refused_before_any_cell_runs(tmp_path):
    from sgbench.sampling import SampleConfig, sample_run

    ckpt = _toy(tmp_path / "toy.safetensors")
    configs = [SampleConfig(checkpoint=str(ckpt), out=str(tmp_path / name), num=10, steps=1) for name in ("a", "b")]
    sample_run(configs[1], progress=False)
    with np.load(tmp_path / "b" / "samples.npz") as f:
        images, labels = f["arr_0"].copy(), f["labels"]
    atomic_savez(tmp_path / "b" / "samples.npz", arr_0=255 - images, labels=labels)
    with pytest.raises(SgbenchError, match="samples.npz changed since sampling wrote it"):
        jobs.check_jobs(configs, jobs.Evaluation())
    assert not (tmp_path / "a").exists()


def test_the_image_size_checked_before_sampling_is_the_size_sampled(tmp_path):
    from sgbench.sampling import SampleConfig, sample_run

    configs = [SampleConfig(checkpoint=str(_toy(tmp_path / "toy16.safetensors", input_size=16)), out=str(tmp_path / "p"), num=2, steps=1)]
    try:
        from sgbench.workflows.memory import tiny_latent_model, tiny_vae

        model, vae = tiny_latent_model(tmp_path / "latent.safetensors"), tiny_vae(tmp_path / "vae")
        configs.append(SampleConfig(checkpoint=str(model), vae=str(vae), out=str(tmp_path / "l"), num=2, steps=1))
    except ImportError:  # no diffusers: the pixel model only
        pass
    for config in configs:
        with np.load(sample_run(config, progress=False) / "samples.npz") as f:
            assert f["arr_0"].shape[1:3] == (jobs.image_size(config),) * 2


@pytest.mark.skipif(not _has_animal_reference(), reason="needs sgbench.evaluation and reference_stats/animal-all")
def test_sweep_end_to_end(tmp_path):
    """A real tiny sweep through the CLI: cells sampled and evaluated, the invalid one skipped, figures
    written; the rerun redoes nothing; compare reads the cells."""
    from sgbench.models.checkpoint import save_model
    from sgbench.models.sit import SiT, Route, preset

    ckpt = tmp_path / "tiny.safetensors"
    save_model(SiT(preset("Tiny-test", routes=(Route(1, 2, 0.5),), input_size=32, patch_size=8, num_classes=10)), ckpt)
    out = tmp_path / "sweep"
    args = ["sweep", "-c", str(ckpt), "--ref", "animal-all", "--grid", "gs=0,0.5", "--grid", "gw=0.5", "--grid", "scale=1.5",
            "--sparsity", "0.5", "--num-samples", "10", "--batch-size", "10", "--steps", "2", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "2 cells run, 0 already finished, 1 skipped as invalid" in r.output
    cell = out / "sg-gs0-gw0.5-scale1.5-seed0"
    run = json.loads((cell / "run.json").read_text())
    assert run["guidance"]["params"]["gs"] == 0.0 and run["num_samples"] == 10 and run["config"]["steps"] == 2
    records = json.loads((cell / "metrics.json").read_text())["records"]
    assert {r["metric"] for r in records} >= {"fid", "precision", "recall", "class_accuracy"}
    figs = {p.name for p in (out / "figures").glob("*.png")}
    assert figs == {"sparsity_tiny.png", "fd_heatmap_tiny.png", "throughput_tiny.png"}

    mtime = (cell / "samples.npz").stat().st_mtime_ns
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "0 cells run, 2 already finished, 1 skipped as invalid" in r.output
    assert (cell / "samples.npz").stat().st_mtime_ns == mtime

    r = CliRunner().invoke(app, ["compare", str(out), "--format", "json"])
    rows = json.loads(r.stdout)["rows"]
    assert sorted(row["config"] for row in rows) == ["sg gs=0 gw=0.5 w=1.5", "sg gs=0.5 w=1"]
    assert all(row["fd"] is not None and row["gflops_step"] > 0 for row in rows)

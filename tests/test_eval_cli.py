"""`sgbench eval` / `sgbench stats` through the CLI, LPIPS and CLIP score (offline, random or local weights)."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.data.animal import load_animal_mnist
from sgbench.utils.errors import SgbenchError
from sgbench.evaluation import write_samples
from sgbench.evaluation.clip_score import build_clip, clip_score
from sgbench.evaluation.lpips_score import TRUNK_FILES, build_lpips, mean_lpips

runner = CliRunner()


@pytest.fixture
def ref_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SGBENCH_REFERENCE_STATS", str(tmp_path / "reference_stats"))
    return tmp_path / "reference_stats"


def test_cli_stats_build_then_eval_fid_writes_metrics(ref_dir, tmp_path):
    images, labels = load_animal_mnist("test")
    write_samples(tmp_path / "ref.npz", images[:200])
    first = runner.invoke(app, ["stats", "build", "small", "--from", str(tmp_path / "ref.npz")])
    again = runner.invoke(app, ["stats", "build", "small", "--from", str(tmp_path / "ref.npz")])
    assert first.exit_code == 0 and first.output.startswith("Built"), first.output
    assert again.exit_code == 0 and again.output.startswith("Cached, not recomputed:"), again.output
    run = tmp_path / "run"
    run.mkdir()
    write_samples(run / "samples.npz", images[200:400], labels[200:400])
    result = runner.invoke(app, ["eval", "fid", str(run), "--ref", "small"])
    assert result.exit_code == 0, result.output
    assert "200 samples vs 'small'" in result.output and "class accuracy" in result.output and "FD" in result.output
    assert "FID" not in result.output  # a Fréchet distance in animal features is not an FID
    records = json.loads((run / "metrics.json").read_text())["records"]
    assert {r["metric"] for r in records} >= {"fid", "is", "precision", "recall", "class_accuracy"}


def test_cli_refuses_bad_npz_with_one_line(ref_dir, tmp_path):
    np.savez(tmp_path / "s.npz", arr_0=np.zeros((4, 3, 32, 32), np.float32))
    result = runner.invoke(app, ["eval", "fid", str(tmp_path / "s.npz"), "--ref", "x"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: Expected 'arr_0' in") and result.output.count("\n") == 1


def test_stats_build_and_import_refuse_a_batch_size_below_one_before_writing(ref_dir, tmp_path):
    from test_cli import one_line_error

    images, _ = load_animal_mnist("test")
    write_samples(tmp_path / "ref.npz", images[:20])
    one_line_error(runner.invoke(app, ["stats", "build", "small", "--from", str(tmp_path / "ref.npz"), "-b", "0"]),
                   "Expected --batch-size >= 1 but got 0")
    one_line_error(runner.invoke(app, ["stats", "import-adm", str(tmp_path / "ref.npz"), "-b", "-3"]),
                   "Expected --batch-size >= 1 but got -3")
    assert not ref_dir.exists()


def test_eval_fid_refuses_labels_that_are_not_integers_naming_the_sample_layout(tmp_path):
    from test_cli import one_line_error

    images, labels = load_animal_mnist("test")
    np.savez(tmp_path / "s.npz", arr_0=images[:20], labels=labels[:20].astype(np.float32) + 0.5)
    one_line_error(runner.invoke(app, ["eval", "fid", str(tmp_path / "s.npz"), "--ref", "animal-all"]),
                   f"Expected 'labels' in {tmp_path / 's.npz'} as integer class indices of shape (N,) (the ADM sample layout: "
                   "arr_0 uint8 NHWC, labels int) but got a float32 array of shape (20,)")


def test_rerunning_a_finished_eval_fid_reuses_its_metrics_without_recomputing(ref_dir, tmp_path, monkeypatch):
    evaluate_module = importlib.import_module("sgbench.evaluation.evaluate")  # the package's `evaluate` is the function

    images, labels = load_animal_mnist("test")
    write_samples(tmp_path / "ref.npz", images[:200])
    assert runner.invoke(app, ["stats", "build", "small", "--from", str(tmp_path / "ref.npz")]).exit_code == 0
    run = tmp_path / "run"
    run.mkdir()
    write_samples(run / "samples.npz", images[200:400], labels[200:400])
    args = ["eval", "fid", str(run), "--ref", "small", "--bootstrap", "20"]
    first = runner.invoke(app, [*args, "--kid"])
    assert first.exit_code == 0, first.output
    metrics_file = run / "metrics.json"
    stored, mtime = metrics_file.read_bytes(), metrics_file.stat().st_mtime_ns

    passes = []  # every feature pass over the samples
    real = evaluate_module.stream_features
    monkeypatch.setattr(evaluate_module, "stream_features", lambda *a, **k: passes.append(1) or real(*a, **k))
    again = runner.invoke(app, [*args, "--kid", "-b", "7"])  # the batch size does not change the metrics
    assert again.exit_code == 0, again.output
    assert passes == [] and again.stdout == first.stdout and "Not recomputed" in again.stderr
    assert metrics_file.read_bytes() == stored and metrics_file.stat().st_mtime_ns == mtime
    fewer = runner.invoke(app, args)  # without --kid: every metric asked for is stored
    assert passes == [] and fewer.exit_code == 0 and "KID" not in fewer.stdout and "class accuracy" in fewer.stdout

    other = runner.invoke(app, ["eval", "fid", str(run), "--ref", "small", "--bootstrap", "10"])  # other options: computed
    assert other.exit_code == 0 and passes == [1] and "(10 replicates)" in other.stdout and "Not recomputed" not in other.output
    write_samples(run / "samples.npz", images[400:600], labels[400:600])  # other samples: computed
    assert runner.invoke(app, ["eval", "fid", str(run), "--ref", "small", "--bootstrap", "10"]).exit_code == 0 and passes == [1, 1]


def test_cli_help_has_examples():
    result = runner.invoke(app, ["eval", "fid", "--help"])
    assert result.exit_code == 0 and "sgbench eval fid runs/animal/sg --ref animal-all" in result.output


def test_lpips_random_trunk_pairs(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)
    b = rng.integers(0, 256, (6, 32, 32, 1), dtype=np.uint8)
    for name, x in (("a", a), ("a2", a), ("b", b)):
        write_samples(tmp_path / f"{name}.npz", x)
    same = mean_lpips(tmp_path / "a.npz", tmp_path / "a2.npz", random_trunk=True, batch_size=4)
    other = mean_lpips(tmp_path / "a.npz", tmp_path / "b.npz", random_trunk=True, batch_size=4)
    assert same["lpips"] == pytest.approx(0.0, abs=1e-7) and other["lpips"] > 0 and other["num_pairs"] == 6
    write_samples(tmp_path / "short.npz", a[:5])
    with pytest.raises(SgbenchError, match=r"Expected paired runs with the same number and size of samples but got \(6, 32, 32, 1\) and \(5, 32, 32, 1\)"):
        mean_lpips(tmp_path / "a.npz", tmp_path / "short.npz", random_trunk=True)


def test_lpips_trunk_from_local_torchvision_file(tmp_path, monkeypatch):
    import torchvision

    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, tmp_path / "alexnet.pth")
    model, sha = build_lpips("alex", trunk_weights=tmp_path / "alexnet.pth")
    trunk = model.net.state_dict()
    torch.testing.assert_close(trunk["slice1.0.weight"], state["features.0.weight"])
    torch.testing.assert_close(trunk["slice5.10.weight"], state["features.10.weight"])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SGBENCH_LPIPS_TRUNK", raising=False)
    with pytest.raises(SgbenchError, match=rf"LPIPS trunk weights not found. Get {TRUNK_FILES['alex'][0]} from https://download.pytorch.org/models/"):
        build_lpips("alex")


def test_clip_score_with_tiny_local_model(tmp_path):
    import open_clip

    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "sgbench-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "sgbench-tiny-clip.json")
    torch.save(open_clip.create_model("sgbench-tiny-clip", pretrained=None).state_dict(), tmp_path / "tiny.pt")
    write_samples(tmp_path / "s.npz", np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    out = clip_score(tmp_path / "s.npz", ["a cat", "a dog", "a cow"], model_name="sgbench-tiny-clip", weights=tmp_path / "tiny.pt")
    assert 0.0 <= out["clip_score"] <= 100.0 and out["num_samples"] == 3
    with pytest.raises(SgbenchError, match="Expected one prompt per sample"):
        clip_score(tmp_path / "s.npz", ["a cat"], model_name="sgbench-tiny-clip", weights=tmp_path / "tiny.pt")
    with pytest.raises(SgbenchError, match="Expected local open_clip weights for ViT-B-32"):
        build_clip("ViT-B-32", weights=None)

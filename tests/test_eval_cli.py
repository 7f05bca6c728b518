"""`sgbench eval` / `sgbench stats` through the CLI, LPIPS and CLIP score (offline, random or local weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.data.animal import load_animal_mnist
from sgbench.errors import SgbenchError
from sgbench.metrics import write_samples
from sgbench.metrics.clip_score import build_clip, clip_score
from sgbench.metrics.lpips_score import TRUNK_FILES, build_lpips, mean_lpips

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

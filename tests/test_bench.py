"""`sgbench bench`: recipes are validated before any sampling; the quick bench is gated in CI."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sgbench.utils import resources
from sgbench.workflows.bench import DEFAULT_RECIPE, load_bench_recipe, plan
from sgbench.cli import app
from sgbench.utils.errors import SgbenchError

RECIPE = resources.resolve(DEFAULT_RECIPE)


def write(tmp_path, **changes):
    raw = yaml.safe_load(RECIPE.read_text())
    if "configs" in changes:  # other backbones name the default labels in their `configs`
        raw["backbones"] = {"routed": raw["backbones"]["routed"]}
    raw.update(changes)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_recipe_plans_every_method_on_the_shipped_backbone():
    recipe = load_bench_recipe()
    runs = plan(recipe)
    assert {cell.guidance for _, cell, _ in runs} == {"unguided", "cfg", "ag", "icg", "apg", "sg", "cfg+sg", "ag+sg"}
    for _, cell, config in runs:
        assert Path(config.checkpoint).is_file()
        assert (config.guide is not None) == (cell.guidance in ("ag", "ag+sg"))
    assert [c.label for _, c, _ in plan(recipe, quick=True)] == ["unguided", "CFG", "SG_FLOPS"]


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"extra": 1}, r"Unknown bench recipe section\(s\) \['extra'\]"),
        ({"configs": [{"label": "x", "guidance": "sgg"}]}, "Expected a guidance method but got 'sgg'. Did you mean sg"),
        ({"configs": [{"label": "x", "guidance": "ag", "scale": 2.0}]}, "needs a guide: set guide: to one of"),
        ({"configs": [{"label": "x", "guidance": "sg", "gs": 0.9, "gw": 0.5}]}, r"Expected 0 <= gs < gw < 1"),
        ({"configs": [{"guidance": "cfg"}, {"guidance": "cfg"}]}, "labels must be unique"),
        ({"sampling": {"nums": 3}}, r"Unknown key\(s\) sampling.nums"),
        ({"quick": {"configs": ["nope"]}}, "quick.configs names 'nope'"),
        ({"sampling": {"precision": "fp16"}}, "Expected sampling.precision fp32 or bf16 but got 'fp16'"),
        ({"vae": {"path": "x"}}, "Expected 'vae' as a VAE directory or a Hugging Face cache name"),
        ({"backbones": {"routed": {"checkpoint": "x.safetensors", "configs": ["nope"]}}}, "backbones.routed.configs names 'nope'"),
    ],
)
def test_bad_bench_recipes_fail_before_sampling(tmp_path, changes, message):
    with pytest.raises(SgbenchError, match=message):
        load_bench_recipe(write(tmp_path, **changes))


def test_the_imagenet_recipe_decodes_with_its_vae_in_bf16():
    recipe = load_bench_recipe("recipes/bench/imagenet-sit-xl2.yaml")
    runs = plan(recipe)
    assert [c.label for _, c, _ in runs] == ["unguided", "CFG", "AG", "ICG", "SG_FLOPS", "SG_FID"]
    assert all((c.vae, c.precision, c.num, c.device) == ("data/sd-vae-ft-ema", "bf16", 50000, "cuda") for _, _, c in runs)


def test_a_backbone_runs_only_its_configs(tmp_path):
    raw = yaml.safe_load(RECIPE.read_text())
    routed = raw["backbones"]["routed"]
    backbones = {"routed": routed, "subset": {"checkpoint": routed["checkpoint"], "configs": ["unguided", "CFG"]}}
    runs = plan(load_bench_recipe(write(tmp_path, backbones=backbones)))
    assert [c.label for b, c, _ in runs if b == "subset"] == ["unguided", "CFG"]
    assert len([b for b, _, _ in runs if b == "routed"]) == len(raw["configs"])


def test_only_a_file_shadows_a_shipped_recipe_name(tmp_path, monkeypatch):
    from sgbench.workflows.bench import recipe_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t2i").mkdir()  # e.g. a bench's output folder
    assert recipe_path("t2i") == resources.recipes_dir() / "bench" / "t2i.yaml"
    assert load_bench_recipe("t2i").name == "t2i"
    (tmp_path / "animal").write_text("name: mine\n")
    assert recipe_path("animal") == Path("animal")


@pytest.mark.parametrize("content,message", [
    (None, "Error: Baseline file {path} does not exist"),
    ("{", "Error: Baseline {path} is not valid JSON"),
    ('{"kind": "other"}', "Error: {path} is not an sgbench baseline"),
])
def test_a_bad_baseline_is_refused_before_sampling(tmp_path, monkeypatch, content, message):
    def no_sampling(*args, **kwargs):
        raise AssertionError("the baseline must be checked before the bench samples")

    monkeypatch.setattr("sgbench.workflows.bench.run_bench", no_sampling)
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(app, ["bench", "--quick", "--baseline", str(path), "--out", str(tmp_path / "b")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(message.format(path=path)), result.output
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_quick_bench_matches_the_committed_baseline(tmp_path):
    """The CI regression gate: `bench --quick` must reproduce baselines/bench-quick.json within tolerance."""
    result = CliRunner().invoke(app, ["bench", "--quick", "--out", str(tmp_path / "bench"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "Regression gate passed" in result.output  # the recipe names baselines/bench-quick.json
    board = json.loads((tmp_path / "bench" / "quick" / "leaderboard.json").read_text())
    assert len(board["rows"]) == 3 and all(row["fd_lo"] < row["fd"] < row["fd_hi"] for row in board["rows"])
    # A rerun reuses every finished cell and gives the same leaderboard.
    again = CliRunner().invoke(app, ["bench", "--quick", "--out", str(tmp_path / "bench"), "--format", "json"])
    assert again.exit_code == 0 and "done already, kept" in again.output
    assert json.loads((tmp_path / "bench" / "quick" / "leaderboard.json").read_text())["rows"] == board["rows"]


@pytest.mark.slow
def test_quick_text_bench_matches_the_committed_baseline(tmp_path):
    """The text-to-image gate: `bench t2i --quick` (the shipped scenes model, a stratified GenEval subset,
    the offline GenEval) must reproduce baselines/bench-t2i-quick.json within tolerance."""
    result = CliRunner().invoke(app, ["bench", "t2i", "--quick", "--out", str(tmp_path / "bench"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "Regression gate passed" in result.output
    board = json.loads((tmp_path / "bench" / "quick" / "leaderboard.json").read_text())
    assert [row["kind"] for row in board["rows"]] == ["t2i"] * 3
    assert all(row["geneval_lo"] <= row["geneval"] <= row["geneval_hi"] for row in board["rows"])

"""`sgbench tune` (docs/design.md, "Tuning"): an equal budget per method, tuning seeds disjoint from the
bench's, successive halving's arithmetic, the GFLOPs budget, and one-line errors for bad search spaces."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.core.guidance import build_guidance
from sgbench.utils import resources
from sgbench.utils.errors import SgbenchError
from sgbench.workflows.bench import DEFAULT_RECIPE, load_bench_recipe
from sgbench.workflows.tune import (TuneSettings, choose_candidates, grid, load_tuning, plan_tuning, read_settings, rung_sizes,
                                    samples_per_method, search_space, tuned_recipe, tuning_seeds)

RECIPE = resources.resolve(DEFAULT_RECIPE)


def write(tmp_path, tune=None, **changes):
    raw = yaml.safe_load(RECIPE.read_text())
    raw.update(changes)
    if tune is not None:
        raw["tune"] = tune
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("k,eta,sizes", [(8, 2, [8, 4, 2]), (4, 2, [4, 2]), (9, 3, [9, 3]), (5, 2, [5, 2]), (3, 4, [3]), (1, 2, [])])
def test_halving_keeps_the_best_1_over_eta_until_one_is_left(k, eta, sizes):
    assert rung_sizes(k, eta) == sizes


def test_every_tuned_method_gets_the_same_candidates_and_samples(tmp_path):
    plan = load_tuning(None, out=tmp_path)
    units = plan.units["all"]
    tuned = [u for u in units if u.grid_size > 1]
    assert {u.method for u in tuned} >= {"cfg", "ag", "icg", "apg", "sg", "cfg+sg", "ag+sg"}
    assert {len(u.candidates) for u in tuned} == {plan.settings.candidates} == {8}
    # the grid of cfg's scale x the recipe's intervals (5 x 5) is larger than K: a seeded subset, each setting once
    cfg = next(u for u in tuned if u.method == "cfg" and u.backbone == "routed")
    assert cfg.grid_size == 25 and len({json.dumps(c.setting, sort_keys=True) for c in cfg.candidates}) == 8
    assert samples_per_method(plan) == 8 * 50 + 4 * 100 + 2 * 200
    assert [u.candidates for u in units if u.method == "unguided"][0][0].setting == {}  # nothing to tune: one setting
    assert load_tuning(None, out=tmp_path).units["all"][0].candidates == units[0].candidates  # seeded: the same plan


def test_a_grid_smaller_than_k_is_repeated_with_fresh_tuning_seeds():
    pairs = choose_candidates([{"scale": 1.5}, {"scale": 2.0}, {"scale": 3.0}], 8, seed=1000)
    assert [s["scale"] for s, _ in pairs] == [1.5, 2.0, 3.0] * 2 + [1.5, 2.0]
    assert [r for _, r in pairs] == [0, 0, 0, 1, 1, 1, 2, 2]
    subset = choose_candidates([{"scale": float(i)} for i in range(20)], 4, seed=1000)
    assert len(subset) == 4 and subset == sorted(subset, key=lambda p: p[0]["scale"]) and {r for _, r in subset} == {0}


def test_tuning_seeds_are_disjoint_from_the_bench_seed(tmp_path):
    plan = load_tuning(write(tmp_path, tune={"space": {"cfg": {"scale": [1.5, 2.0], "interval": ["0:1"]}}}), out=tmp_path / "t")
    seeds = tuning_seeds(plan)
    assert seeds == [1000, 1001, 1002, 1003] and plan.recipe.sampling.seed == 0  # cfg's 2 settings fill K = 8
    with pytest.raises(SgbenchError, match="Expected tune.seed_offset to be an integer >= 1 but got 0"):
        read_settings({"seed_offset": 0}, quick=False)
    settings = TuneSettings(seed_offset=0, candidates=4, space={"cfg": {"scale": [2.0], "interval": ["0:1", "0.2:1"]}})
    with pytest.raises(SgbenchError, match="Expected tuning seeds disjoint from the bench's seed 0"):
        plan_tuning(load_bench_recipe(), settings=settings, quick=True, out=tmp_path / "t")


def test_the_gflops_budget_keeps_only_settings_within_it(tmp_path):
    plan = load_tuning(None, quick=True, out=tmp_path, budgets=[2.5, 5.0])
    assert list(plan.units) == ["all", "max2.5gflops", "max5gflops"]  # the unrestricted tune always runs
    for name, limit in (("max2.5gflops", 2.5), ("max5gflops", 5.0)):
        for unit in plan.units[name]:
            assert all(c.gflops_image <= limit for c in unit.candidates)
    by = {(b, u.method): u for b, units in plan.units.items() for u in units}
    # guided at 16 or 20 of 20 steps cfg costs 3.7-4.1 GFLOPs/image: within 2.5 only its 4-step intervals are left
    assert {tuple(c.setting["interval"]) for c in by["max2.5gflops", "cfg"].candidates} <= {(0.2, 0.35), (0.45, 0.6)}
    assert by["max5gflops", "cfg"].grid_size == 25 and by["max2.5gflops", "sg"].grid_size < by["max5gflops", "sg"].grid_size
    with pytest.raises(SgbenchError, match="Expected --max-gflops-image to be a positive number"):
        load_tuning(None, quick=True, out=tmp_path, budgets=[0.0])
    assert list(load_tuning(None, quick=True, out=tmp_path, budgets=[3.0, 3.0]).units) == ["all", "max3gflops"]


def test_search_spaces_come_from_the_fields_and_respect_each_methods_rules():
    cell = load_bench_recipe().configs[5]  # SG_FLOPS
    space = search_space("sg", cell, {}, {})
    assert space["scale"] == [1.5, 2.0, 2.5, 3.0] and space["gs"] == [0.0, 0.2, 0.5] and space["gw"] == [0.7, 0.8, 0.9]
    settings = grid("sg", space)
    assert len(settings) == 4 * 3 * 3 * 2 and all(s["gs"] < s["gw"] for s in settings)
    ag = search_space("ag", load_bench_recipe().configs[2], {}, {"step900": "x.safetensors"})
    assert ag["guide"] == ["step900"]
    assert {s["guide"] for s in grid("ag", ag)} == {"step900"}
    apg = search_space("apg", load_bench_recipe().configs[4], {}, {})
    assert {k: len(v) for k, v in apg.items()} == {"scale": 4, "eta": 2, "momentum": 2, "norm_threshold": 2, "interval": 2}
    assert grid("cfg", {"scale": [2, 2.0], "interval": [(0.0, 1.0), "0:1"]}) == [{"scale": 2.0, "interval": [0.0, 1.0]}]


@pytest.mark.parametrize("tune,message", [
    ([8], r"Expected the recipe's tune section as a mapping"),
    ({"candidate": 3}, r"Unknown key\(s\) \['candidate'\] in the recipe's tune section; allowed:"),
    ({"eta": 1}, "Expected tune.eta to be an integer >= 2 but got 1"),
    ({"samples": 5}, "Expected tune.samples to be an integer >= 10 but got 5"),
    ({"quick": {"k": 2}}, "Expected tune.quick as a mapping of"),
    ({"space": {"sgg": {"scale": [2]}}}, r"tune.space names \['sgg'\], which are not guidance methods"),
    ({"space": {"sg": {"omega": [2]}}}, r"tune.space.sg names \['omega'\], which sg does not take; it takes"),
    ({"space": {"sg": {"scale": 2}}}, "Expected tune.space.sg.scale as a non-empty list of values but got 2"),
    ({"space": {"sg": {"gs": [0.95]}}}, r"tune.space.sg has no valid setting: Expected 0 <= gs < gw < 1"),
    ({"space": {"sg": {"gs": [0.0, 0.95]}}}, r"tune.space.sg.gs value 0.95 fits no valid setting: Expected 0 <= gs < gw < 1"),
    ({"space": {"cfg": {"scale": [0.5, 2]}}}, "tune.space.cfg.scale value 0.5 fits no valid setting: Expected scale"),
    ({"space": {"ag": {"guide": ["nope"]}}}, r"tune.space.ag.guide names \['nope'\]; the backbone's guides are \['step900'\]"),
])
def test_bad_tune_sections_are_one_line_errors_before_sampling(tmp_path, monkeypatch, tune, message):
    def no_sampling(*args, **kwargs):
        raise AssertionError("the tune section must be checked before any sampling")

    monkeypatch.setattr("sgbench.workflows.tune.run_tuning", no_sampling)
    with pytest.raises(SgbenchError, match=message):
        load_tuning(write(tmp_path, tune=tune), out=tmp_path / "t")
    result = CliRunner().invoke(app, ["tune", write(tmp_path, tune=tune), "-o", str(tmp_path / "t")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.output


def test_quick_reads_the_quick_defaults_and_the_recipes_quick_section():
    assert (read_settings(None, quick=True).candidates, read_settings(None, quick=True).samples) == (4, 20)
    assert read_settings({"samples": 30, "quick": {"samples": 12}}, quick=True).samples == 12
    assert read_settings({"samples": 30, "quick": {"samples": 12}}, quick=False).samples == 30


def test_the_tuned_recipe_is_a_bench_recipe_of_the_chosen_settings(tmp_path):
    plan = load_tuning(None, quick=True, out=tmp_path)
    for unit in plan.units["all"]:
        unit.chosen = unit.candidates[-1]
    raw = tuned_recipe(plan, "all")
    assert [c["label"] for c in raw["configs"]] == ["unguided", "cfg", "sg"] and raw["out"] == str(tmp_path / "all")
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(raw))
    recipe = load_bench_recipe(path)
    assert recipe.sampling.seed == 0 and recipe.quick.num == 100  # the bench's held-out seed and sizes
    sg = next(c for c in recipe.configs if c.guidance == "sg")
    assert sg.params == plan.units["all"][2].chosen.setting
    assert build_guidance("sg", **sg.params).params == sg.params  # the canonical setting rebuilds itself


@pytest.mark.slow
def test_tune_end_to_end_writes_a_tuned_bench_that_bench_and_a_rerun_reuse(tmp_path):
    """A small tuning (cfg: two scales, K = 2, 4 steps): tune.json, the tuned recipe and board, the figure;
    `bench tuned.yaml --quick` and a second `tune` keep every finished run."""
    path = write(tmp_path, backbones={"routed": yaml.safe_load(RECIPE.read_text())["backbones"]["routed"]},
                 configs=[{"label": "unguided", "guidance": "unguided"}, {"label": "CFG", "guidance": "cfg", "scale": 2.0}],
                 sampling={"num": 20, "batch_size": 20, "steps": 4, "seed": 0},
                 quick={"num": 20}, tune={"space": {"cfg": {"scale": [1.5, 3.0], "interval": ["0:1"]}},
                                          "quick": {"candidates": 2, "samples": 10}})
    out = tmp_path / "tune"
    result = CliRunner().invoke(app, ["tune", path, "--quick", "-o", str(out), "-f", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "tune.json").read_text())
    assert report["scoring_seed"] == 0 and report["tuning_seeds"] == [1000] and report["samples_per_method"] == 2 * 10
    cfg = next(u for u in report["budgets"][0]["units"] if u["method"] == "cfg")
    assert [len(r["runs"]) for r in cfg["rungs"]] == [2] and all(r["score"] is not None for r in cfg["rungs"][0]["runs"])
    best = min(cfg["rungs"][0]["runs"], key=lambda r: r["score"])
    assert cfg["chosen"]["setting"] == best["setting"]
    assert (out / "pareto.png").is_file() and (out / "all" / "quick" / "leaderboard.json").is_file()
    again = CliRunner().invoke(app, ["bench", str(out / "tuned.yaml"), "--quick"])
    assert again.exit_code == 0 and again.output.count("done already, kept") == 2, again.output
    rerun = CliRunner().invoke(app, ["tune", path, "--quick", "-o", str(out)])
    assert rerun.exit_code == 0 and rerun.output.count("done already, kept") == 2, rerun.output


def test_text_tuning_runs_are_named_by_prompts_and_images_not_only_their_product(tmp_path):
    """24 images can be 24 prompts x 1 or 12 x 2: two different runs, never one directory."""
    from sgbench.workflows.tune import _config

    plan = load_tuning("t2i", quick=True, out=tmp_path)
    unit = next(u for u in plan.units["all"] if u.method == "cfg")
    setting = unit.candidates[0].setting
    rung0, rung1 = (_config(plan, unit, setting, seed=1000, rung=r) for r in (0, 1))
    assert rung0.out.endswith("-seed1000-p6x1") and rung1.out.endswith("-seed1000-p6x2")
    assert (rung0.num, rung1.num) == (6, 12)

"""Training: recipes are strict, a killed run resumes exactly, 2 processes equal 1."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from sgbench.evaluation.probe import ATTRIBUTES
from sgbench.workflows.recipes import DataSection, load_train_recipe
from sgbench.utils.errors import SgbenchError
from sgbench.models.checkpoint import load_model
from sgbench.workflows.train import batch_indices, ema_decay_at, train, training_time

TINY = {
    "name": "tiny",
    "model": {"preset": "Tiny-test", "routes": [[1, 2, 0.5]], "overrides": {"input_size": 32, "patch_size": 8, "num_classes": 10}},
    "data": {"dataset": "animal_mnist", "split": "test"},
    "train": {"steps": 4, "batch_size": 8, "lr": "1e-3", "ckpt_every": 2, "snapshots": [2], "ema_decay": 0.9},
}


def write_recipe(tmp_path: Path, name="r.yaml", **changes) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    raw["out"] = str(tmp_path / "out")
    for section, values in changes.items():
        raw[section].update(values)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def weights(out: Path) -> dict:
    return load_model(out / "model.safetensors").state_dict()


def assert_same(a: dict, b: dict, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def test_recipes_in_the_repository_are_valid():
    """Every class training recipe loads strictly and builds the kind of model its name says."""
    root = Path(__file__).parents[1] / "recipes"
    paths = sorted(root.glob("animal/*.yaml")) + sorted(root.glob("imagenet/*.yaml"))
    assert [p.stem for p in paths] == ["dense", "masked", "routed", "sit-xl2-masking", "sit-xl2-routing"]
    for path in paths:
        recipe = load_train_recipe(path)
        config = recipe.model.build()
        kind = "masking" if "mask" in path.stem else "routing" if "rout" in path.stem else "dense"
        assert config.sparsity_kind == kind and config.text is None and config.num_classes > 0, path
        assert recipe.data.dataset == ("animal_mnist" if path.parent.name == "animal" else "latents"), path


@pytest.mark.parametrize("kind", ["routing", "masking", "dense", "routing-bf16"])
def test_killed_run_resumes_to_identical_weights(tmp_path, kind):
    model = {"routing": {}, "routing-bf16": {}, "dense": {"routes": []}, "masking": {"routes": [], "masking": {"rate": 0.5, "decoder_depth": 1, "decoder_width": 16, "decoder_heads": 2}}}[kind]
    train_changes = {"precision": "bf16"} if kind.endswith("bf16") else {}
    straight = load_train_recipe(write_recipe(tmp_path / "a", model=model, train=train_changes))
    train(straight, progress=False)
    halves = load_train_recipe(write_recipe(tmp_path / "b", model=model, train=train_changes))
    train(halves, progress=False, stop_after=2)
    assert not (Path(halves.out) / "model.safetensors").exists()
    train(halves, resume=True, progress=False)
    assert_same(weights(Path(straight.out)), weights(Path(halves.out)))
    assert (Path(halves.out) / "snapshots" / "ema-step2.safetensors").exists()


def test_ema_warmup_ramps_the_decay_up_to_its_target():
    # (1 + s) / (10 + s): the first update keeps 10% of the random initial weights, not 99.9%.
    assert ema_decay_at(0, 0.999, warmup=True) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999, warmup=True) == pytest.approx(0.91)
    assert ema_decay_at(10**6, 0.999, warmup=True) == 0.999
    assert all(ema_decay_at(s, 0.999, warmup=False) == 0.999 for s in (0, 10, 10**6))


def test_logit_normal_training_times_are_sigmoids_of_the_samples_normal_draw():
    recipe = load_train_recipe(Path("recipes/t2i/animal-scenes-routed.yaml"))
    t_cfg = replace(recipe.train, time_sampling="logit_normal", time_mean=-0.8, time_std=0.8)
    n = torch.randn((), generator=torch.Generator().manual_seed(3))
    assert training_time(t_cfg, torch.Generator().manual_seed(3)) == torch.sigmoid(-0.8 + 0.8 * n)
    u = torch.rand((), generator=torch.Generator().manual_seed(3))
    assert training_time(replace(t_cfg, time_sampling="uniform"), torch.Generator().manual_seed(3)) == u
    times = torch.stack([training_time(t_cfg, torch.Generator().manual_seed(s)) for s in range(2000)])
    assert 0 < times.min() and times.max() < 1 and abs(times.median() - torch.sigmoid(torch.tensor(-0.8))) < 0.03


def test_data_order_is_a_permutation_per_epoch():
    seen = [batch_indices(0, s, 7, 20) for s in range(6)]  # 42 positions = 2 epochs + 2
    flat = [int(i) for b in seen for i in b]
    assert sorted(flat[:20]) == list(range(20)) and sorted(flat[20:40]) == list(range(20))


def test_restarting_without_resume_is_refused(tmp_path):
    recipe = load_train_recipe(write_recipe(tmp_path))
    train(recipe, progress=False, stop_after=1)
    with pytest.raises(SgbenchError, match="pass --resume"):
        train(recipe, progress=False)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"train": {"stepz": 3}}, r"Unknown key\(s\) train.stepz; allowed: steps"),
        ({"model": {"routes": [[1, 9, 0.5]]}}, "outside the model's blocks"),
        ({"model": {"routes": [[1, 2, 1.5]]}}, r"in \[0, 1\)"),
        ({"train": {"lr": "fast"}}, "Expected train.lr to be float"),
        ({"data": {"dataset": "imagenet"}}, "Unknown data.dataset 'imagenet'"),
        ({"train": {"precision": "fp16"}}, "Unknown train.precision 'fp16'; expected one of fp32, bf16"),
        ({"train": {"time_sampling": "cosine"}}, "Unknown train.time_sampling 'cosine'; expected one of uniform, logit_normal"),
        ({"train": {"time_std": 0}}, "Expected train.time_std > 0 but got 0"),
    ],
)
def test_bad_recipes_fail_before_training(tmp_path, changes, message):
    with pytest.raises(SgbenchError, match=message):
        train(load_train_recipe(write_recipe(tmp_path, **changes)), progress=False)
    assert not (tmp_path / "out" / "checkpoint.safetensors").exists()


def test_fine_tuning_starts_from_the_init_from_weights_and_resumes_from_its_checkpoint(tmp_path):
    base = load_train_recipe(write_recipe(tmp_path / "base"))
    train(base, progress=False)
    start = str(Path(base.out) / "model.safetensors")
    # lr 0: the optimiser moves nothing, so the fine-tuned model is the file it started from
    frozen = load_train_recipe(write_recipe(tmp_path / "frozen", train={"init_from": start, "lr": 0.0, "steps": 2}))
    train(frozen, progress=False)
    assert_same(weights(Path(frozen.out)), weights(Path(base.out)))
    # a killed fine-tuning run resumes from its own checkpoint, not from init_from again
    straight = load_train_recipe(write_recipe(tmp_path / "a", train={"init_from": start}))
    train(straight, progress=False)
    halves = load_train_recipe(write_recipe(tmp_path / "b", train={"init_from": start}))
    train(halves, progress=False, stop_after=2)
    train(halves, resume=True, progress=False)
    assert_same(weights(Path(straight.out)), weights(Path(halves.out)))


def test_fine_tuning_refuses_a_model_of_another_architecture(tmp_path):
    base = load_train_recipe(write_recipe(tmp_path / "base", model={"routes": []}))
    train(base, progress=False)
    recipe = load_train_recipe(write_recipe(tmp_path / "ft", train={"init_from": str(Path(base.out) / "model.safetensors")}))
    with pytest.raises(SgbenchError, match=r"train.init_from: .* another config than this recipe's \(differs in name, routes\)"):
        train(recipe, progress=False)
    missing = load_train_recipe(write_recipe(tmp_path / "none", train={"init_from": str(tmp_path / "nope.safetensors")}))
    with pytest.raises(SgbenchError, match="Checkpoint not found: .*nope.safetensors"):
        train(missing, progress=False)


def test_overrides_and_unknown_sections(tmp_path):
    recipe = load_train_recipe(write_recipe(tmp_path), ["train.steps=7", "model.routes=[[0, 1, 0.25]]"])
    assert recipe.train.steps == 7 and recipe.model.routes == ((0, 1, 0.25),)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, "optimizer": {}}))
    with pytest.raises(SgbenchError, match=r"Unknown recipe section\(s\) \['optimizer'\]"):
        load_train_recipe(path)


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    one = load_train_recipe(write_recipe(tmp_path / "1"))
    train(one, progress=False)
    two_dir = tmp_path / "2"
    path = write_recipe(two_dir)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "sgbench.cli", "train", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Same data, noise, times and token selections; only the gradient summation order differs.
    assert_same(weights(Path(one.out)), weights(two_dir / "out"), atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# Text-to-image: scenes rendered per global sample, captions dropped to the empty prompt

TEXT_TINY = {
    "name": "tiny-t2i",
    "model": {
        "preset": "Tiny-test", "routes": [[1, 2, 0.5]],
        "overrides": {"input_size": 32, "in_channels": 3, "patch_size": 8, "num_classes": 0},
        "text": {"encoder": "embedded", "vocabulary": "animal_scenes", "width": 16, "heads": 2, "max_length": 16},
    },
    "data": {"dataset": "animal_scenes", "canvas": 32, "sprite": 10, "hold_out": "geneval"},
    "train": {"steps": 4, "batch_size": 8, "lr": "1e-3", "ckpt_every": 2, "snapshots": [2], "ema_decay": 0.9,
              "class_dropout": 0.3},
}


def write_text_recipe(tmp_path: Path, **changes) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(yaml.safe_dump(TEXT_TINY))
    raw["out"] = str(tmp_path / "out")
    for section, values in changes.items():
        raw[section].update(values)
    path = tmp_path / "t2i.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_text_recipes_in_the_repository_are_valid():
    for path in sorted(Path(__file__).parents[1].glob("recipes/t2i/*.yaml")):
        config = load_train_recipe(path).model.build()
        assert config.text is not None and "bears" in config.text.vocabulary


@pytest.mark.parametrize("kind", ["routing", "masking"])
def test_text_model_killed_run_resumes_to_identical_weights(tmp_path, kind):
    model = {} if kind == "routing" else {"routes": [], "masking": {"rate": 0.5, "decoder_depth": 1, "decoder_width": 16, "decoder_heads": 2}}
    straight = load_train_recipe(write_text_recipe(tmp_path / "a", model=model))
    train(straight, progress=False)
    halves = load_train_recipe(write_text_recipe(tmp_path / "b", model=model))
    train(halves, progress=False, stop_after=2)
    train(halves, resume=True, progress=False)
    a, b = weights(Path(straight.out)), weights(Path(halves.out))
    assert any(k.startswith("text_encoder.") for k in a)  # the encoder is trained and saved with the model
    assert_same(a, b)
    again = load_model(Path(halves.out) / "model.safetensors")
    assert again.config.text.vocabulary == load_train_recipe(write_text_recipe(tmp_path / "c")).model.build().text.vocabulary
    assert (Path(halves.out) / "grid-step4.png").exists()


def test_text_training_changes_the_text_encoder(tmp_path):
    recipe = load_train_recipe(write_text_recipe(tmp_path))
    train(recipe, progress=False)
    from sgbench.models.sit import SiT

    torch.manual_seed(recipe.train.seed)
    initial = SiT(recipe.model.build()).state_dict()
    trained = weights(Path(recipe.out))
    assert not torch.equal(initial["text_encoder.base.embedding.weight"], trained["text_encoder.base.embedding.weight"])


def test_the_attribute_probe_is_logged_during_text_training(tmp_path):
    recipe = load_train_recipe(write_text_recipe(tmp_path, train={"probe_every": 2, "probe_scenes": 3}))
    train(recipe, progress=False)
    lines = [json.loads(line) for line in (Path(recipe.out) / "train_log.jsonl").read_text().splitlines()]
    probes = [line for line in lines if "probe" in line]
    assert [p["step"] for p in probes] == [2, 4]
    assert all(set(p["probe"]) == set(ATTRIBUTES) and all(0 <= v <= 1 for v in p["probe"].values()) for p in probes)
    assert (Path(recipe.out) / "probe.png").stat().st_size > 0  # the curve, redrawn after every probe


def test_a_text_recipe_that_names_no_style_draws_the_miniatures_default_scenes(tmp_path):
    from sgbench.data import scenes

    data = load_train_recipe(write_text_recipe(tmp_path)).data  # TEXT_TINY names neither objects nor layout
    assert (data.objects, data.layout) == (scenes.DEFAULT_OBJECTS, scenes.DEFAULT_LAYOUT)
    assert (DataSection().canvas, DataSection().sprite) == (scenes.DEFAULT_CANVAS, scenes.DEFAULT_SPRITE)


@pytest.mark.parametrize("style", [{}, {"objects": "silhouettes", "layout": "free"}])
def test_scene_rendering_workers_train_the_same_weights(tmp_path, style):
    inline = load_train_recipe(write_text_recipe(tmp_path / "a", data=style))
    train(inline, progress=False)
    pooled = load_train_recipe(write_text_recipe(tmp_path / "b", data={"workers": 2, **style}))
    train(pooled, progress=False)
    assert_same(weights(Path(inline.out)), weights(Path(pooled.out)))


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"data": {"workers": -1}}, r"Expected data.workers >= 0 \(0 renders scenes in the training process\) but got -1"),
        ({"data": {"dataset": "animal_mnist"}}, "data.dataset 'animal_mnist' needs a class-conditional model"),
        ({"data": {"canvas": 40}}, "Scenes of 40x40x3 do not fit the model's input 32x32x3"),
        ({"data": {"hold_out": "coco"}}, "Unknown data.hold_out 'coco'; expected geneval"),
        ({"data": {"objects": "icons"}}, r"Expected data.objects in silhouettes, glyphs and data.layout in free, grid but got 'icons' and 'grid'"),
        ({"data": {"caption_families": [3]}}, r"Expected data.caption_families to map families to weights, e.g. \{position: 3\}, but got \[3\]"),
        ({"data": {"caption_families": {"postion": 3}}}, r"Unknown caption families \['postion'\]; expected some of single_object"),
        ({"model": {"text": {**TEXT_TINY["model"]["text"], "pooling": "max"}}}, "Expected text pooling in mean, start but got 'max'"),
        ({"train": {"probe_every": -1}}, r"Expected train.probe_every >= 0 \(0: off\) and train.probe_scenes >= 1 but got -1 and 100"),
    ],
)
def test_bad_text_recipes_fail_before_training(tmp_path, changes, message):
    with pytest.raises(SgbenchError, match=message):
        train(load_train_recipe(write_text_recipe(tmp_path, **changes)), progress=False)
    assert not (tmp_path / "out" / "checkpoint.safetensors").exists()


def test_class_data_needs_a_class_model(tmp_path):
    with pytest.raises(SgbenchError, match="data.dataset 'animal_scenes' needs a text model"):
        train(load_train_recipe(write_recipe(tmp_path, data={"dataset": "animal_scenes"})), progress=False)


@pytest.mark.slow
def test_two_processes_train_a_text_model_like_one(tmp_path):
    one = load_train_recipe(write_text_recipe(tmp_path / "1"))
    train(one, progress=False)
    path = write_text_recipe(tmp_path / "2")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "sgbench.cli", "train", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The text encoder's gradients are all-reduced too: it runs outside DDP's forward but in its graph.
    # Tolerance: Adam moves every weight by about lr = 1e-3 a step whatever its gradient's size, so a
    # weight whose gradient is float noise (zero-initialised branches, the flat background's patch
    # weights) differs by up to ~4e-5 between a sum over 8 samples and two all-reduced sums of 4; an
    # unsynchronised encoder would differ by whole steps (~1e-3).
    assert_same(weights(Path(one.out)), weights(tmp_path / "2" / "out"), atol=2e-4)

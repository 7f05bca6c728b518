"""The command line: one vocabulary, guidance options from the registry, and one clear line (exit 2) for
every user mistake found by trying commands as a new user would."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from sgbench.utils import resources
from sgbench.cli import app
from sgbench.data.animal import load_animal_mnist
from sgbench.core.guidance import REGISTRY
from sgbench.core.guidance.base import parameter_specs
from sgbench.evaluation import write_samples
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import save_model

runner = CliRunner()
COMMAND = get_command(app)
TOY = preset("Tiny-test", routes=(Route(1, 2, 0.5),), input_size=32, patch_size=8, num_classes=10)


def options(*path: str) -> dict[str, list[str]]:
    """Option names of a command: {param name: ['--long', '-s']}."""
    cmd = COMMAND
    for name in path:
        cmd = cmd.commands[name]
    return {p.name: p.opts for p in cmd.params}


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "toy.safetensors"
    save_model(SiT(TOY), path)
    return path


def sample_args(checkpoint, out, *extra) -> list[str]:
    return ["sample", "-c", str(checkpoint), "-n", "4", "-b", "4", "--steps", "2", "-o", str(out), *extra]


# --- one vocabulary -----------------------------------------------------------------------------------


def test_every_registered_parameter_is_an_option_of_sample_sweep_and_flops():
    for name, spec in parameter_specs().items():
        flag = "--" + name.replace("_", "-")
        for command in ("sample", "sweep", "flops"):
            assert [flag] in options(command).values(), (command, flag)
    fields = {f.name for cls in REGISTRY.values() for f in dataclasses.fields(cls)}
    assert fields == set(parameter_specs())


def test_the_same_thing_has_the_same_name_everywhere():
    shared = {"num": ["--num-samples", "-n"], "batch_size": ["--batch-size", "-b"], "checkpoint": ["--checkpoint", "-c"],
              "out": ["--out", "-o"], "steps": ["--steps"], "solver": ["--solver"], "device": ["--device"], "guide": ["--guide"],
              "extractor": ["--extractor", "-e"], "fmt": ["--format", "-f"], "ref": ["--ref"]}
    commands = [("sample",), ("sweep",), ("flops",), ("bench",), ("speed",), ("compare",), ("eval", "fid"), ("stats", "build")]
    for path in commands:
        for name, opts in options(*path).items():
            if name in shared:
                assert opts == shared[name], (path, name, opts)
    for path in [("sample",), ("sweep",), ("flops",), ("speed",)]:
        assert options(*path)["guidance"][:2] == ["--guidance", "-g"], path


def test_help_has_examples_everywhere():
    for path in [("sample",), ("sweep",), ("flops",), ("bench",), ("speed",), ("compare",), ("train",), ("export", "model"), ("export", "geneval"), ("eval", "geneval"), ("ingest", "geneval"),
                 ("eval", "fid"), ("stats", "build")]:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Example" in result.output, path


def test_interval_has_one_syntax():
    result = runner.invoke(app, ["flops", "-g", "cfg", "--interval", "0.2,0.8"])
    one_line_error(result, "Expected --interval as T_LO:T_HI (e.g. 0.2:0.8) but got '0.2,0.8'")
    assert runner.invoke(app, ["flops", "-g", "cfg", "--interval", "0.2:0.8", "--json"]).exit_code == 0


def test_schedules_are_accepted_wherever_a_sparsity_is(checkpoint, tmp_path):
    result = runner.invoke(app, ["flops", "--route", "2:24", "-g", "sg", "--gs", "linear:0:0.4", "--gw", "0.9", "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "sg", "--gs", "cosine:0.4:0", "--gw", "0.9"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["guidance"]["params"]["gs"] == "cosine:0.4:0"


def test_flops_costs_heun():
    euler = json.loads(runner.invoke(app, ["flops", "-g", "cfg", "--steps", "10", "--json"]).stdout)[0]
    heun = json.loads(runner.invoke(app, ["flops", "-g", "cfg", "--steps", "10", "--solver", "heun", "--json"]).stdout)[0]
    assert (euler["num_evals"], heun["num_evals"]) == (10, 19)
    assert heun["per_image"]["no_sharing"]["paper"] == pytest.approx(1.9 * euler["per_image"]["no_sharing"]["paper"])


# --- resume, reuse ------------------------------------------------------------------------------------


def test_a_run_with_an_interval_resumes_and_a_finished_run_is_left_alone(checkpoint, tmp_path):
    """The configuration identity goes through JSON: (0.2, 0.8) and [0.2, 0.8] are the same run."""
    args = sample_args(checkpoint, tmp_path / "r", "-g", "cfg", "--scale", "2", "--interval", "0.2:0.8")
    assert runner.invoke(app, args).exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()} == stamps


def test_a_finished_run_is_reused_from_a_read_only_copy(checkpoint, tmp_path, monkeypatch):
    args = sample_args(checkpoint, tmp_path / "r")
    assert runner.invoke(app, args).exit_code == 0

    def no_writes(*a, **k):
        raise AssertionError("a finished run must not be written")

    monkeypatch.setattr("sgbench.runs.rundir.atomic_write_json", no_writes)
    monkeypatch.setattr("sgbench.runs.rundir.NpzWriter", no_writes)
    assert runner.invoke(app, args).exit_code == 0


# --- every user mistake: one line, exit 2 -------------------------------------------------------------


def test_sample_errors(checkpoint, tmp_path):
    if not torch.cuda.is_available():
        one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "--device", "cuda")), "Expected a CUDA GPU")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "--device", "tpu")), "Expected --device cpu, cuda")
    (tmp_path / "file").write_text("x")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "file")), "Expected --out to be a directory")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "file" / "sub")), "Cannot write the run directory")
    one_line_error(runner.invoke(app, sample_args(checkpoint, Path("/proc/sgbench-cannot-write"))), "Cannot write the run directory")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "cfg", "--guide", str(checkpoint))),
                   "--guide is a checkpoint for ag and ag+sg; cfg runs no guide model")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "ag")), "Expected a guide model")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "sgg")), "Did you mean sg")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "sg", "--gs", "0.9", "--gw", "0.5")),
                   "Expected 0 <= gs < gw < 1")
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "cfg", "--gs", "0.5")),
                   "Guidance 'cfg' does not take --gs")
    one_line_error(runner.invoke(app, sample_args(tmp_path / "nope.safetensors", tmp_path / "r")), "Checkpoint not found")
    assert not (tmp_path / "r").exists()  # nothing was written by any of these


def test_flops_refuses_sparse_guidance_on_a_dense_model_with_the_line_sample_prints(tmp_path):
    dense = tmp_path / "dense.safetensors"
    save_model(SiT(dataclasses.replace(TOY, routes=())), dense)
    for method in ("sg", "cfg+sg", "ag+sg"):
        sampled = runner.invoke(app, sample_args(dense, tmp_path / "r", "-g", method, *(["--guide", str(dense)] if "ag" in method else [])))
        costed = runner.invoke(app, ["flops", "-c", str(dense), "-g", method, "--steps", "2"])
        one_line_error(sampled, f"{method} runs its", "has no routes and no masking")
        assert costed.output == sampled.output and costed.exit_code == 2
    one_line_error(runner.invoke(app, ["flops", "--model", "SiT-XL/2", "-g", "sg"]),
                   "sg runs its strong branch at token drop rate 0.5 (t = 0), but the main model (SiT-XL/2) has no routes and no masking")
    assert not (tmp_path / "r").exists()


def test_a_negative_seed_is_refused_before_sampling(checkpoint, tmp_path):
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "--seed", "-1")),
                   "Expected --seed >= 0 (any non-negative integer) but got -1")
    assert not (tmp_path / "r").exists()


def test_images_per_prompt_without_prompts_is_refused(checkpoint, tmp_path):
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "--images-per-prompt", "3")),
                   "Expected --images-per-prompt only with --prompts FILE (text models)")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_non_finite_scale_is_refused_as_not_finite(checkpoint, tmp_path, value):
    one_line_error(runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "cfg", "--scale", value)),
                   f"Expected scale to be a finite number >= 1 (1 = no guidance) but got {value}")
    assert not (tmp_path / "r").exists()


def test_eval_errors(tmp_path):
    images, labels = load_animal_mnist("test")
    write_samples(tmp_path / "s.npz", images[:50], labels[:50])
    one_line_error(runner.invoke(app, ["eval", "fid", str(tmp_path / "s.npz"), "--ref", "animal-all", "-b", "0"]),
                   "Expected --batch-size >= 1 but got 0")
    write_samples(tmp_path / "imagenet.npz", images[:50], np.arange(50) * 20)
    one_line_error(runner.invoke(app, ["eval", "fid", str(tmp_path / "imagenet.npz"), "--ref", "animal-all"]),
                   "Expected labels in 0..9 (the animal extractor's classes)")
    # a bad CRC: flip one byte inside the stored image data
    raw = bytearray((tmp_path / "s.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "s.npz") as z:
        info = z.getinfo("arr_0.npy")
    raw[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    one_line_error(runner.invoke(app, ["eval", "fid", str(tmp_path / "crc.npz"), "--ref", "animal-all"]), "is corrupt")
    one_line_error(runner.invoke(app, ["eval", "fid", str(tmp_path / "nope"), "--ref", "animal-all"]), "no such file or directory")


def test_recipe_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: {preset: Animal-T/4\ntrain: [")
    one_line_error(runner.invoke(app, ["train", str(tmp_path / "bad.yaml")]), "is not valid YAML at line")
    (tmp_path / "text.yaml").write_text("just some words")
    one_line_error(runner.invoke(app, ["train", str(tmp_path / "text.yaml")]), "Expected a YAML mapping")
    one_line_error(runner.invoke(app, ["bench", str(tmp_path / "text.yaml")]), "Expected a YAML mapping")
    one_line_error(runner.invoke(app, ["train", str(tmp_path / "nope.yaml")]), "Recipe not found")


def test_compare_errors(tmp_path):
    one_line_error(runner.invoke(app, ["compare", str(tmp_path / "nope")]), "does not exist")


def test_sweep_checks_everything_before_the_first_cell(checkpoint, tmp_path):
    base = ["sweep", "-c", str(checkpoint), "--grid", "scale=1.5,2", "-n", "10", "--steps", "2", "-o", str(tmp_path / "s")]
    one_line_error(runner.invoke(app, [*base, "--ref", "nope"]), "Expected a reference name")
    one_line_error(runner.invoke(app, [*base, "--ref", "animal-all", "-e", "inception"]),
                   "built with extractor 'inception' but reference 'animal-all' was built with 'animal'")
    one_line_error(runner.invoke(app, [*base[:-4], "-n", "4", "-o", str(tmp_path / "s"), "--ref", "animal-all"]),
                   "Expected at least 10 samples")
    assert not (tmp_path / "s").exists()


def test_bench_checks_every_cell_before_the_first(tmp_path):
    raw = yaml.safe_load(resources.resolve("recipes/bench/animal.yaml").read_text())
    raw["backbones"]["masked"]["checkpoint"] = str(tmp_path / "missing.safetensors")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    one_line_error(runner.invoke(app, ["bench", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "b")]), "Checkpoint not found")
    raw = yaml.safe_load(resources.resolve("recipes/bench/animal.yaml").read_text())
    raw["sampling"]["num"] = 5
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    one_line_error(runner.invoke(app, ["bench", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "b")]), "Expected at least 10 samples")
    assert not (tmp_path / "b").exists()


def test_shipped_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.resolve("recipes/bench/animal.yaml").is_file()
    assert resources.resolve("sgbench/assets/animal-routed.safetensors").is_file()
    assert resources.resolve("baselines/bench-quick.json").is_file()
    result = runner.invoke(app, ["stats", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "animal-all" in result.output

"""The command line: one vocabulary, guidance options from the registry, and one clear line (exit 2) for
every user mistake found by trying commands as a new user would."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from sgbench.utils import resources
from sgbench.cli import app, main
from sgbench.data.animal import load_animal_mnist
from sgbench.core.guidance import REGISTRY
from sgbench.core.guidance.base import parameter_specs
from sgbench.evaluation import write_samples
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import save_model
from sgbench.results.compare import Comparison

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


# --- every command parses a realistic argument list ----------------------------------------------------


def leaf_commands(cmd=COMMAND, path: tuple[str, ...] = ()):
    """(path, command) of every command that runs (groups excluded)."""
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from leaf_commands(sub, (*path, name))
    else:
        yield path, cmd


P = Path
# command -> (a realistic argument list, the values it must resolve to); a new command must add a row
PARSES = {
    ("train",): (["recipes/animal/routed.yaml", "train.steps=200", "--resume", "--device", "cuda", "--stop-after", "5"],
                 {"recipe": P("recipes/animal/routed.yaml"), "overrides": ["train.steps=200"], "resume": True, "device": "cuda", "stop_after": 5}),
    ("import",): (["tread", "latest.pt", "tread.safetensors", "--route", "2:24:0.5", "--vae", "vae", "--trust-pickle"],
                  {"kind": "tread", "source": P("latest.pt"), "dest": P("tread.safetensors"), "route": ["2:24:0.5"], "vae": "vae",
                   "trust_pickle": True, "dense": False}),
    ("sample",): (["-c", "m.safetensors", "-g", "sg:gs=0.5", "--gw", "0.9", "--scale", "1.5", "-n", "8", "-b", "4", "--seed", "3",
                   "-o", "runs/sg", "--precision", "bf16"],
                  {"checkpoint": P("m.safetensors"), "guidance": "sg:gs=0.5", "guidance_gw": "0.9", "guidance_scale": "1.5", "num": 8,
                   "batch_size": 4, "seed": 3, "out": P("runs/sg"), "precision": "bf16", "guidance_gs": None}),
    ("flops",): (["--model", "SiT-XL/2", "--route", "2:24", "-g", "cfg", "-g", "sg:gs=0.5,gw=0.9", "--solver", "heun", "-f", "json"],
                 {"model": "SiT-XL/2", "route": ["2:24"], "guidance": ["cfg", "sg:gs=0.5,gw=0.9"], "solver": "heun", "fmt": "json",
                  "as_json": False}),
    ("speed",): (["-g", "cfg", "-g", "sg:gs=0.5,gw=0.9", "-b", "8", "--repeats", "5", "--threads", "2"],
                 {"guidance": ["cfg", "sg:gs=0.5,gw=0.9"], "batch_size": 8, "repeats": 5, "threads": 2, "model": "SiT-XL/2"}),
    ("bench",): (["t2i", "--quick", "-o", "runs/q", "-f", "markdown", "--baseline", "b.json"],
                 {"recipe": "t2i", "quick": True, "full": False, "out": P("runs/q"), "fmt": "markdown", "baseline": P("b.json")}),
    ("tune",): (["t2i", "--quick", "--max-gflops-image", "20", "--max-gflops-image", "40.5", "-o", "runs/t", "-f", "json"],
                {"recipe": "t2i", "quick": True, "max_gflops_image": [20.0, 40.5], "out": P("runs/t"), "fmt": "json"}),
    ("compare",): (["runs/a", "runs/b", "-s", "gflops_step", "--reverse", "-f", "csv", "--file", "lb.csv", "-t", "fid=0.5",
                    "--plots", "figs", "--reference", "paper", "--save-baseline", "base.json"],
                   {"runs": [P("runs/a"), P("runs/b")], "sort": "gflops_step", "reverse": True, "fmt": "csv", "file": P("lb.csv"),
                    "tolerance": ["fid=0.5"], "plots": P("figs"), "reference": "paper", "save_baseline": P("base.json"), "out": None}),
    ("sweep",): (["-c", "m.safetensors", "--ref", "animal-all", "--grid", "gs=0,0.5", "--grid", "scale=1.5,2", "-g", "sg:gw=0.9",
                  "--seed", "0", "--seed", "1", "--sparsity", "0,0.5", "-o", "runs/sw", "--figures", "figs"],
                 {"checkpoint": P("m.safetensors"), "ref": "animal-all", "grid": ["gs=0,0.5", "scale=1.5,2"], "guidance": "sg:gw=0.9",
                  "seed": [0, 1], "sparsity": "0,0.5", "out": P("runs/sw"), "figures": P("figs")}),
    ("export", "model"): (["a.safetensors", "b.safetensors", "--half"], {"source": P("a.safetensors"), "dest": P("b.safetensors"), "half": True}),
    ("export", "geneval"): (["runs/t2i/cfg", "layout", "--metadata", "meta.jsonl"],
                            {"run": P("runs/t2i/cfg"), "out": P("layout"), "metadata": P("meta.jsonl")}),
    ("data", "encode"): (["IMAGENET/train", "data/latents", "--vae", "vae", "--flip", "-b", "16", "--shard-size", "500"],
                         {"images": P("IMAGENET/train"), "out": P("data/latents"), "vae": "vae", "flip": True, "batch_size": 16, "shard_size": 500}),
    ("guidance", "list"): ([], {}),
    ("eval", "fid"): (["runs/sg", "--ref", "animal-all", "-e", "inception", "--weights", "w.pth", "--kid", "-b", "50", "--bootstrap", "10"],
                      {"samples": P("runs/sg"), "ref": "animal-all", "extractor": "inception", "weights": P("w.pth"), "kid": True,
                       "batch_size": 50, "bootstrap": 10}),
    ("eval", "probe"): (["-c", "t2i.safetensors", "--scenes", "50", "--sprite", "14", "-f", "json"],
                        {"checkpoint": P("t2i.safetensors"), "scenes": 50, "sprite": 14, "fmt": "json"}),
    ("eval", "lpips"): (["runs/sg", "--against", "runs/cond", "--net", "vgg", "-b", "8"],
                        {"samples": P("runs/sg"), "against": P("runs/cond"), "net": "vgg", "batch_size": 8}),
    ("eval", "clip"): (["samples.npz", "--prompts", "p.txt", "--weights", "clip.bin", "--model", "ViT-L-14", "-b", "4"],
                       {"samples": P("samples.npz"), "prompts": P("p.txt"), "weights": P("clip.bin"), "model": "ViT-L-14", "batch_size": 4}),
    ("eval", "geneval"): (["runs/t2i/cfg", "--bootstrap", "0"], {"run": P("runs/t2i/cfg"), "bootstrap": 0}),
    ("eval", "hpsv3"): (["runs/t2i/sg", "--weights", "HPSv3.safetensors", "--base-model", "qwen", "--device", "cpu", "-b", "2"],
                        {"run": P("runs/t2i/sg"), "weights": P("HPSv3.safetensors"), "base_model": P("qwen"), "device": "cpu",
                         "batch_size": 2, "checkpoint": None}),
    ("eval", "train-classifier"): (["--file", "c.safetensors", "--epochs", "2", "--seed", "1"],
                                   {"file": P("c.safetensors"), "epochs": 2, "seed": 1, "out": None}),
    ("stats", "build"): (["my-ref", "--from", "images/", "-e", "inception", "--weights", "w.pth", "--force", "-b", "10"],
                         {"name": "my-ref", "source": "images/", "extractor": "inception", "weights": P("w.pth"), "force": True, "batch_size": 10}),
    ("stats", "import-adm"): (["VIRTUAL.npz", "--name", "v", "--weights", "w.pth", "-b", "10"],
                              {"path": P("VIRTUAL.npz"), "name": "v", "weights": P("w.pth"), "batch_size": 10}),
    ("stats", "list"): ([], {}),
    ("geneval", "prompts"): (["--file", "p.jsonl", "--seed", "7"], {"file": P("p.jsonl"), "seed": 7, "out": None}),
    ("geneval", "validate"): (["--seed", "1", "--images-per-prompt", "2"], {"seed": 1, "images_per_prompt": 2}),
    ("geneval", "train-classifier"): (["--file", "s.safetensors", "--seed", "1", "--workers", "2"],
                                      {"file": P("s.safetensors"), "seed": 1, "workers": 2, "out": None}),
    ("ingest", "geneval"): (["results.jsonl", "runs/t2i/cfg", "--bootstrap", "50"],
                            {"results": P("results.jsonl"), "run": P("runs/t2i/cfg"), "bootstrap": 50, "run_option": None}),
}


def test_every_command_parses_a_realistic_argument_list():
    """Parsed without running: every command's options resolve to the values the library receives."""
    assert {path for path, _ in leaf_commands()} == set(PARSES)
    for path, cmd in leaf_commands():
        args, expected = PARSES[path]
        params = cmd.make_context(" ".join(path), list(args)).params
        assert {k: params[k] for k in expected} == expected, path


def test_one_vocabulary_for_out_checkpoint_format_and_guidance():
    """-o/--out is an output folder; -c/--checkpoint a model checkpoint; --format/-f the output format;
    -g/--guidance NAME[:key=value,...]. Older spellings are hidden options that say what they were."""
    hidden_out = set()
    for path, cmd in leaf_commands():
        for p in cmd.params:
            help_text = (getattr(p, "help", None) or "").lower()
            if getattr(p, "hidden", False):
                assert help_text.startswith("deprecated spelling of"), (path, p.opts)
                hidden_out |= {path} if "--out" in p.opts else set()
                continue
            if "--out" in p.opts or "-o" in p.opts:
                assert p.opts == ["--out", "-o"] and ("folder" in help_text or "directory" in help_text), (path, p.opts, help_text)
            if "-c" in p.opts or "--checkpoint" in p.opts:
                assert p.opts == ["--checkpoint", "-c"] and "checkpoint" in help_text, (path, p.opts)
            if "--format" in p.opts or "-f" in p.opts:
                assert p.opts == ["--format", "-f"], (path, p.opts)
            if "--guidance" in p.opts:
                assert p.opts == ["--guidance", "-g"] and "name:key=value" in help_text, (path, help_text)
            assert "--json" not in p.opts and "--run" not in p.opts, (path, p.opts)
    assert hidden_out == {("compare",), ("geneval", "prompts"), ("eval", "train-classifier"), ("geneval", "train-classifier")}
    for path in hidden_out:
        assert ["--file"] in options(*path).values(), path


# --- old spellings: one line on stderr, the same call ---------------------------------------------------


def record(monkeypatch, target: str, result):
    """Replace the library function `target` by one that records its arguments and returns `result`."""
    calls = []
    monkeypatch.setattr(target, lambda *args, **kwargs: calls.append((args, kwargs)) or result)
    return calls


def warning(command: str, old: str, new: str, why: str = "") -> str:
    return (f"Deprecated: `sgbench {command} {old}` works in this release but not in the next; use `sgbench {command} {new}`"
            + (f": {why}" if why else ""))


OUT = "-o/--out names an output folder in every command"
HPS = SimpleNamespace(mu=[0.5], overall=0.5, category_means={})
HPS_WARNING = warning("eval hpsv3", "-c/--checkpoint", "--weights", "-c/--checkpoint names a model checkpoint in every other command")
GENEVAL = SimpleNamespace(task_scores={}, overall=0.5, results=[])
DEPRECATIONS = {  # name: (command, old args, new args, library function, its fake result, the warning)
    "compare -o": (["compare", "runs"], ["-o", "lb.md"], ["--file", "lb.md"], "sgbench.results.compare.compare_runs",
                   Comparison([], "", Path("lb.md"), [], None), warning("compare", "-o/--out", "--file", OUT)),
    "compare --out": (["compare", "runs"], ["--out", "lb.md"], ["--file", "lb.md"], "sgbench.results.compare.compare_runs",
                      Comparison([], "", Path("lb.md"), [], None), warning("compare", "-o/--out", "--file", OUT)),
    "geneval prompts -o": (["geneval", "prompts"], ["-o", "p.jsonl"], ["--file", "p.jsonl"],
                           "sgbench.evaluation.geneval.prompts.write_prompts", [], warning("geneval prompts", "-o/--out", "--file", OUT)),
    "eval train-classifier -o": (["eval", "train-classifier"], ["-o", "c.safetensors"], ["--file", "c.safetensors"],
                                 "sgbench.evaluation.train_classifier.train_animal_classifier",
                                 {"test_accuracy": 1.0, "train_accuracy": 1.0, "train_seconds": 1.0},
                                 warning("eval train-classifier", "-o/--out", "--file", OUT)),
    "geneval train-classifier -o": (["geneval", "train-classifier"], ["-o", "s.safetensors"], ["--file", "s.safetensors"],
                                    "sgbench.evaluation.geneval.train_classifier.train_scene_classifier", {},
                                    warning("geneval train-classifier", "-o/--out", "--file", OUT)),
    "eval hpsv3 -c": (["eval", "hpsv3", "runs/t2i", "--base-model", "qwen"], ["-c", "H.safetensors"], ["--weights", "H.safetensors"],
                      "sgbench.evaluation.t2i.evaluate_hpsv3_run", HPS, HPS_WARNING),
    "eval hpsv3 --checkpoint": (["eval", "hpsv3", "runs/t2i", "--base-model", "qwen"], ["--checkpoint", "H.safetensors"],
                                ["--weights", "H.safetensors"], "sgbench.evaluation.t2i.evaluate_hpsv3_run", HPS, HPS_WARNING),
    "ingest geneval --run": (["ingest", "geneval", "results.jsonl"], ["--run", "runs/t2i"], ["runs/t2i"],
                             "sgbench.evaluation.geneval.run.ingest_run", GENEVAL,
                             warning("ingest geneval", "RESULTS --run RUN", "RESULTS RUN", "every command takes its run as an argument")),
}


@pytest.mark.parametrize("name", DEPRECATIONS)
def test_an_old_spelling_warns_in_one_line_and_makes_the_same_call(name, monkeypatch):
    command, old, new, target, result, line = DEPRECATIONS[name]
    calls = record(monkeypatch, target, result)
    now = runner.invoke(app, [*command, *new])
    assert now.exit_code == 0 and "Deprecated" not in now.stderr, now.output
    before = runner.invoke(app, [*command, *old])
    assert before.exit_code == 0, before.output
    assert before.stderr.splitlines() == [line] and before.stdout == now.stdout
    assert len(calls) == 2 and calls[0] == calls[1]
    one_line_error(runner.invoke(app, [*command, *new, *old]), "its deprecated spelling", "drop")


def test_flops_json_is_format_json():
    new = runner.invoke(app, ["flops", "-g", "cfg", "--steps", "2", "--format", "json"])
    old = runner.invoke(app, ["flops", "-g", "cfg", "--steps", "2", "--json"])
    assert new.exit_code == old.exit_code == 0 and new.stdout == old.stdout and json.loads(new.stdout)[0]["method"] == "cfg"
    assert old.stderr.splitlines() == [warning("flops", "--json", "--format json")] and new.stderr == ""
    one_line_error(runner.invoke(app, ["flops", "--format", "json", "--json"]),
                   "Expected --format json or its deprecated spelling --json, not both: drop --json")
    one_line_error(runner.invoke(app, ["flops", "-f", "csv"]), "Expected --format table or json (flops prints no other) but got 'csv'")


def test_a_required_value_missing_both_ways_is_one_line():
    one_line_error(runner.invoke(app, ["ingest", "geneval", "results.jsonl"]),
                   "Expected the run the images came from: sgbench ingest geneval results.jsonl RUN")
    one_line_error(runner.invoke(app, ["eval", "hpsv3", "runs/t2i", "--base-model", "qwen"]), "Expected --weights HPSv3.safetensors")
    one_line_error(runner.invoke(app, ["geneval", "prompts"]), "Expected --file FILE")


# --- -g NAME[:k=v,...] everywhere ---------------------------------------------------------------------


def test_sample_takes_a_guidance_spec_and_combines_it_with_the_options(monkeypatch):
    calls = record(monkeypatch, "sgbench.sampling.sample_run", Path("runs/x"))
    assert runner.invoke(app, ["sample", "-c", "m.safetensors", "-g", "cfg+sg:gs=0.2,gw=0.7", "--scale", "2.5"]).exit_code == 0
    (config,), _ = calls[0]
    assert (config.guidance, config.guidance_params, config.out) == (  # canonical: typed, defaults filled
        "cfg+sg", {"scale": 2.5, "gs": 0.2, "gw": 0.7, "interval": [0.0, 1.0]}, str(Path("runs/sample/cfg_sg-seed0")))
    one_line_error(runner.invoke(app, ["sample", "-c", "m.safetensors", "-g", "sg:gs=0.5", "--gs", "0.3"]),
                   "Expected gs once but got it both in --guidance sg:gs=0.5 and as --gs")
    assert len(calls) == 1


def test_a_spec_and_the_options_are_the_same_run(checkpoint, tmp_path):
    assert runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "sg", "--gs", "0.5", "--gw", "0.9")).exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()}
    again = runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "sg:gs=0.5,gw=0.9"))
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "r").rglob("*") if p.is_file()} == stamps


def test_sweep_takes_a_guidance_spec_as_fixed_parameters(monkeypatch):
    from sgbench.workflows.sweep import SweepLog, SweepReport

    calls = record(monkeypatch, "sgbench.workflows.sweep.sweep_and_plot", SweepReport(SweepLog(), [], "table\n", [Path("f.png")]))
    r = runner.invoke(app, ["sweep", "-c", "m.safetensors", "--ref", "animal-all", "-g", "sg:gw=0.9", "--gs", "0.5",
                            "--grid", "scale=1.5,2", "--sparsity", "0,0.5", "-o", "runs/sw"])
    assert r.exit_code == 0 and r.stdout == "table\nWrote f.png\n", r.output
    (args, kwargs), = calls
    assert args == (Path("m.safetensors"), Path("runs/sw"))
    assert {k: kwargs[k] for k in ("method", "fixed", "grid", "sparsity", "seeds", "figures")} == {
        "method": "sg", "fixed": {"gw": "0.9", "gs": "0.5"}, "grid": {"scale": [1.5, 2.0]}, "sparsity": [0.0, 0.5], "seeds": [0],
        "figures": None}
    one_line_error(runner.invoke(app, ["sweep", "-c", "m.safetensors", "--ref", "animal-all", "-g", "cfg:scale=2", "--scale", "3"]),
                   "Expected scale once but got it both in --guidance cfg:scale=2 and as --scale")


def test_a_sweep_of_only_invalid_cells_says_why_then_fails(monkeypatch):
    """sweep_and_plot (the library) echoes each cell's fate and the summary before the one-line error."""
    from sgbench.workflows import sweep

    def no_valid_cell(*args, log, echo, **kwargs):
        log.skipped.append((None, "Expected 0 <= gs < gw < 1"))
        echo("skipped sg {'gs': 0.9, 'gw': 0.5}: Expected 0 <= gs < gw < 1")
        return []

    monkeypatch.setattr(sweep, "run_sweep", no_valid_cell)
    r = runner.invoke(app, ["sweep", "-c", "m.safetensors", "--ref", "animal-all", "--grid", "gs=0.9", "--gw", "0.5"])
    assert r.exit_code == 2 and r.stdout.splitlines() == ["skipped sg {'gs': 0.9, 'gw': 0.5}: Expected 0 <= gs < gw < 1",
                                                          "0 cells run, 0 already finished, 1 skipped as invalid"], r.output
    assert r.stderr == "Error: Every cell of the sweep was invalid; see the reasons above\n"


def test_the_module_and_the_entry_point_run_the_same_app():
    """pyproject's `sgbench = "sgbench.cli:main"` and `python -m sgbench.cli` (torchrun's way) both work."""
    import os
    import subprocess
    import sys

    assert main.__module__ == "sgbench.cli"
    out = subprocess.run([sys.executable, "-m", "sgbench.cli", "guidance", "list"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0 and "cfg+sg" in out.stdout, out.stderr


def test_help_has_examples_everywhere():
    for path in [("sample",), ("sweep",), ("flops",), ("bench",), ("tune",), ("speed",), ("compare",), ("train",), ("export", "model"), ("export", "geneval"), ("eval", "geneval"), ("ingest", "geneval"),
                 ("eval", "fid"), ("stats", "build")]:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Example" in result.output, path


def test_interval_has_one_syntax():
    result = runner.invoke(app, ["flops", "-g", "cfg", "--interval", "0.2,0.8"])
    one_line_error(result, "Expected --interval as T_LO:T_HI (e.g. 0.2:0.8) but got '0.2,0.8'")
    assert runner.invoke(app, ["flops", "-g", "cfg", "--interval", "0.2:0.8", "--format", "json"]).exit_code == 0


def test_schedules_are_accepted_wherever_a_sparsity_is(checkpoint, tmp_path):
    result = runner.invoke(app, ["flops", "--route", "2:24", "-g", "sg", "--gs", "linear:0:0.4", "--gw", "0.9", "--format", "json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, sample_args(checkpoint, tmp_path / "r", "-g", "sg", "--gs", "cosine:0.4:0", "--gw", "0.9"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["guidance"]["params"]["gs"] == "cosine:0.4:0"


def test_flops_costs_heun():
    euler = json.loads(runner.invoke(app, ["flops", "-g", "cfg", "--steps", "10", "--format", "json"]).stdout)[0]
    heun = json.loads(runner.invoke(app, ["flops", "-g", "cfg", "--steps", "10", "--solver", "heun", "--format", "json"]).stdout)[0]
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

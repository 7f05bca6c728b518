"""Sampling text models from a prompts file: sample (prompt p, image k) depends only on (run seed, p, k),
whatever the batch size, the process count or where a run was resumed; every guidance method runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.core.guidance import REGISTRY
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import save_model
from sgbench.sampling import SampleConfig, sample_run
from sgbench.text.encoder import TextConfig
from sgbench.text.prompts import read_prompts, run_prompts
from sgbench.runs.rundir import RunDir
from sgbench.utils.errors import SgbenchError
from sgbench.utils.files import sha256_file

runner = CliRunner()
VOCAB = ("a", "photo", "of", "bear", "cat", "cats", "red", "blue", "two", "and", "left")
TINY = preset("Tiny-test", input_size=16, patch_size=4, in_channels=3, num_classes=0, routes=(Route(1, 2, 0.5),),
              text=TextConfig("embedded", width=16, heads=2, max_length=8, vocabulary=VOCAB), name="text-tiny")
PROMPTS = ["a photo of a bear", "a photo of a red cat", "two cats", "a bear left of a cat", "a blue bear"]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("text")
    paths = []
    for seed, name in ((0, "main"), (1, "guide")):
        torch.manual_seed(seed)
        model = SiT(TINY)
        for p in model.parameters():  # a model whose every part (text included) moves the output
            p.data.add_(torch.randn_like(p) * 0.1)
        save_model(model, root / f"{name}.safetensors")
        paths.append(root / f"{name}.safetensors")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"tag": "t", "prompt": p}) + "\n" for p in PROMPTS))
    return paths[0], paths[1], prompts


def args(model_files, out, *extra) -> list[str]:
    main, _, prompts = model_files
    return ["sample", "-c", str(main), "--prompts", str(prompts), "--images-per-prompt", "2", "--steps", "3", "-o", str(out),
            "-g", "cfg+sg", "--gs", "0.2", "--gw", "0.7", "--scale", "2.5", *extra]


def test_text_run_layout_and_batch_size_invariance(model_files, tmp_path):
    a = runner.invoke(app, args(model_files, tmp_path / "a", "-b", "3"))
    b = runner.invoke(app, args(model_files, tmp_path / "b", "-b", "64"))
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert (tmp_path / "a" / "samples.npz").read_bytes() == (tmp_path / "b" / "samples.npz").read_bytes()
    with np.load(tmp_path / "a" / "samples.npz") as f:
        assert f["arr_0"].shape == (10, 16, 16, 3) and f["prompt_index"].tolist() == [i // 2 for i in range(10)]
        assert "labels" not in f.files
    info = RunDir(tmp_path / "a").info()
    assert info.conditioning["num_prompts"] == 5 and info.conditioning["images_per_prompt"] == 2
    assert info.conditioning["sha256"] == RunDir(tmp_path / "a").identity()["prompts_sha256"]
    assert (tmp_path / "a" / "grid.png").stat().st_size > 0


def test_a_sample_depends_on_its_prompt_and_image_index_only(model_files, tmp_path):
    """The first 4 samples of a 10-sample run are the 4 samples of a run cut to -n 4."""
    assert runner.invoke(app, args(model_files, tmp_path / "all")).exit_code == 0
    assert runner.invoke(app, args(model_files, tmp_path / "four", "-n", "4")).exit_code == 0
    with np.load(tmp_path / "all" / "samples.npz") as f, np.load(tmp_path / "four" / "samples.npz") as g:
        assert np.array_equal(f["arr_0"][:4], g["arr_0"])


def test_a_killed_text_run_resumes_to_the_same_samples(model_files, tmp_path):
    assert runner.invoke(app, args(model_files, tmp_path / "whole", "-b", "4")).exit_code == 0
    run = RunDir(tmp_path / "part")
    run.claim(RunDir(tmp_path / "whole").identity())
    whole = RunDir(tmp_path / "whole")
    for shard in whole.shards()[:2]:  # as if killed after two batches
        (run.shards_dir / shard.path.name).write_bytes(shard.path.read_bytes())
    assert runner.invoke(app, args(model_files, tmp_path / "part", "-b", "3")).exit_code == 0
    assert (tmp_path / "whole" / "samples.npz").read_bytes() == (tmp_path / "part" / "samples.npz").read_bytes()


@pytest.mark.parametrize("method", list(REGISTRY))
def test_every_method_samples_a_text_model(model_files, tmp_path, method):
    _, guide, _ = model_files
    extra = ["-g", method] + (["--guide", str(guide)] if REGISTRY[method].needs_guide else [])
    main, _, prompts = model_files
    result = runner.invoke(app, ["sample", "-c", str(main), "--prompts", str(prompts), "--steps", "2", "-n", "4",
                                 "-o", str(tmp_path / "r"), *extra])
    assert result.exit_code == 0, result.output


def test_icg_draws_another_prompt_and_the_null_is_the_empty_prompt(model_files, tmp_path):
    main, _, prompts = model_files
    assert runner.invoke(app, ["sample", "-c", str(main), "--prompts", str(prompts), "-g", "icg", "--scale", "2", "-n", "4",
                               "--steps", "2", "-o", str(tmp_path / "icg")]).exit_code == 0
    info = RunDir(tmp_path / "icg").info()
    assert "another prompt" in info.conditioning["icg"] and info.conditioning["null"] == "the empty prompt"


def test_prompt_file_and_model_kind_errors(model_files, tmp_path):
    main, _, prompts = model_files
    base = ["sample", "-c", str(main), "-o", str(tmp_path / "r"), "--steps", "2"]
    r = runner.invoke(app, base)
    assert r.exit_code == 2 and "text-to-image model: give it prompts with --prompts FILE" in r.output
    r = runner.invoke(app, [*base, "--prompts", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "Prompt file not found" in r.output
    (tmp_path / "empty.txt").write_text("\n\n")
    r = runner.invoke(app, [*base, "--prompts", str(tmp_path / "empty.txt")])
    assert r.exit_code == 2 and "has no prompts" in r.output
    (tmp_path / "noprompt.jsonl").write_text('{"tag": "x"}\n')
    r = runner.invoke(app, [*base, "--prompts", str(tmp_path / "noprompt.jsonl")])
    assert r.exit_code == 2 and "line 1 has no 'prompt'" in r.output
    (tmp_path / "latin1.txt").write_bytes("a caf\xe9 bear\n".encode("latin-1"))
    r = runner.invoke(app, [*base, "--prompts", str(tmp_path / "latin1.txt")])
    assert r.exit_code == 2 and "is not UTF-8 text" in r.output
    r = runner.invoke(app, [*base, "--prompts", str(prompts), "-n", "11", "--images-per-prompt", "2"])
    assert r.exit_code == 2 and "Expected --num-samples <= 10" in r.output
    (tmp_path / "unknown.txt").write_text("a purple bear\n")
    r = runner.invoke(app, [*base, "--prompts", str(tmp_path / "unknown.txt")])
    assert r.exit_code == 2 and "has the word 'purple', which is not in this model's vocabulary" in r.output
    class_model = tmp_path / "class.safetensors"
    save_model(SiT(preset("Tiny-test")), class_model)
    r = runner.invoke(app, ["sample", "-c", str(class_model), "--prompts", str(prompts), "-o", str(tmp_path / "c")])
    assert r.exit_code == 2 and "is class-conditional: it takes no --prompts" in r.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_bad_images_per_prompt_is_reported_as_itself(model_files, tmp_path, value):
    """Without -n the number of samples derives from it; the message names --images-per-prompt, not -n."""
    main, _, prompts = model_files
    r = runner.invoke(app, ["sample", "-c", str(main), "--prompts", str(prompts), "--images-per-prompt", value,
                            "--steps", "2", "-o", str(tmp_path / "r")])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and lines == [f"Error: Expected --images-per-prompt >= 1 but got {value}"], r.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("suffix", ["jsonl", "txt"])
def test_a_text_run_keeps_a_copy_of_its_prompts_and_is_scored_without_the_original(model_files, tmp_path, suffix):
    main, _, shipped = model_files
    prompts = tmp_path / f"mine.{suffix}"
    prompts.write_bytes(shipped.read_bytes() if suffix == "jsonl" else "".join(p + "\n" for p in PROMPTS).encode())
    expected = read_prompts(prompts)
    r = runner.invoke(app, ["sample", "-c", str(main), "--prompts", str(prompts), "--steps", "2", "-n", "4", "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    run = RunDir(tmp_path / "r")
    copy = tmp_path / "r" / f"prompts.{suffix}"  # the copy keeps the file's format: GenEval metadata or one prompt per line
    assert run.info().conditioning["copy"] == copy.name and run.prompts_copy() == copy
    assert copy.read_bytes() == prompts.read_bytes()
    assert sha256_file(copy) == run.info().conditioning["sha256"] == run.identity()["prompts_sha256"]
    prompts.unlink()
    records, index, name = run_prompts(RunDir(tmp_path / "r"))
    assert records == expected and index.tolist() == [0, 1, 2, 3]
    assert name == f"{tmp_path.name}/mine.{suffix}"  # metrics name the prompt set, not the copy


def test_a_changed_copy_of_the_prompts_is_refused(model_files, tmp_path):
    main, _, prompts = model_files
    assert runner.invoke(app, ["sample", "-c", str(main), "--prompts", str(prompts), "--steps", "2", "-n", "2",
                               "-o", str(tmp_path / "r")]).exit_code == 0
    copy = tmp_path / "r" / "prompts.jsonl"
    copy.write_text(copy.read_text().replace("bear", "cat"))
    with pytest.raises(SgbenchError) as error:
        run_prompts(RunDir(tmp_path / "r"))
    assert str(error.value) == (f"{copy} is not the prompts file {tmp_path / 'r'} was sampled from (its sha256 is not the one "
                                "run.json records, or it is gone): restore it, or sample the run again into another --out")


def test_a_run_sampled_before_runs_kept_a_copy_reads_its_recorded_prompts_file(model_files, tmp_path):
    main, _, shipped = model_files
    prompts = tmp_path / "p.jsonl"
    prompts.write_bytes(shipped.read_bytes())
    assert runner.invoke(app, ["sample", "-c", str(main), "--prompts", str(prompts), "--steps", "2", "-n", "2",
                               "-o", str(tmp_path / "r")]).exit_code == 0
    info = json.loads((tmp_path / "r" / "run.json").read_text())  # as an older sgbench wrote it: no copy
    del info["conditioning"]["copy"]
    (tmp_path / "r" / "run.json").write_text(json.dumps(info))
    (tmp_path / "r" / "prompts.jsonl").unlink()
    assert RunDir(tmp_path / "r").prompts_copy() is None
    assert run_prompts(RunDir(tmp_path / "r"))[0] == read_prompts(prompts)
    prompts.write_text(prompts.read_text().replace("bear", "cat"))
    with pytest.raises(SgbenchError) as error:
        run_prompts(RunDir(tmp_path / "r"))
    assert str(error.value) == (f"The prompts file {prompts} is not the one {tmp_path / 'r'} was sampled from "
                                "(its sha256 changed or it is gone)")


def test_sampling_reads_the_prompts_file_once(model_files, tmp_path, monkeypatch):
    main, _, prompts = model_files
    reads = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    sample_run(SampleConfig(checkpoint=str(main), out=str(tmp_path / "r"), prompts=str(prompts), num=2, steps=2), progress=False)
    assert reads.count(prompts) == 1


@pytest.mark.slow
def test_two_processes_sample_a_text_model_like_one(model_files, tmp_path):
    assert runner.invoke(app, args(model_files, tmp_path / "one")).exit_code == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "sgbench.cli", *args(model_files, tmp_path / "two", "-b", "3")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    # a child's own one-line error comes before torchrun's long report: show it first
    errors = [line for line in proc.stderr.splitlines() if "Error" in line and "torch" not in line]
    assert proc.returncode == 0, "\n".join(errors[:10]) + "\n" + proc.stderr[-2000:]
    assert (tmp_path / "one" / "samples.npz").read_bytes() == (tmp_path / "two" / "samples.npz").read_bytes()


def test_flops_of_a_text_checkpoint(model_files):
    main, _, _ = model_files
    r = runner.invoke(app, ["flops", "-c", str(main), "-g", "unguided", "-g", "cfg", "-g", "sg:gs=0.1,gw=0.8",
                            "-g", "cfg+sg:gs=0.2,gw=0.7", "--steps", "10", "--format", "json"])
    assert r.exit_code == 0, r.output
    unguided, cfg, sg, cfg_sg = (rep["mean_per_step"]["no_sharing"]["paper"] for rep in json.loads(r.stdout))
    assert cfg > cfg_sg > unguided and cfg > sg
    table = runner.invoke(app, ["flops", "-c", str(main), "-g", "cfg"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "text-tiny" in table.output

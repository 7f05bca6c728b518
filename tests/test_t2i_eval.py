"""Text-to-image runs scored into metrics.json: the offline GenEval, the real GenEval's layout and results,
CLIP; and their leaderboard, kept apart from class-conditional ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgbench import results
from sgbench.cli import app
from sgbench.data.scenes import TASKS, caption_vocabulary
from sgbench.geneval.prompts import PROMPTS_FILE, load_prompts
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import save_model
from sgbench.models.sit import TextConfig
from sgbench.rundir import RunDir

runner = CliRunner()
TEXT = TextConfig("embedded", width=16, heads=2, max_length=16, vocabulary=tuple(caption_vocabulary()))
TINY = preset("Tiny-test", input_size=48, patch_size=12, in_channels=3, num_classes=0, routes=(Route(1, 2, 0.5),), text=TEXT,
              name="scenes-tiny")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny text run on two prompts of each GenEval task (2 images each), and its prompts file."""
    root = tmp_path_factory.mktemp("t2i")
    torch.manual_seed(0)
    save_model(SiT(TINY), root / "model.safetensors")
    by_task = {t: [r for r in load_prompts() if r["tag"] == t][:2] for t in TASKS}
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for t in TASKS for r in by_task[t]))
    run = root / "run"
    result = runner.invoke(app, ["sample", "-c", str(root / "model.safetensors"), "--prompts", str(prompts),
                                 "--images-per-prompt", "2", "--steps", "2", "-g", "cfg", "--scale", "2", "-o", str(run)])
    assert result.exit_code == 0, result.output
    return root, prompts, run


def test_eval_geneval_writes_results_and_task_scores_with_intervals(sampled):
    _, _, run = sampled
    result = runner.invoke(app, ["eval", "geneval", str(run), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    lines = (run / "geneval" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 24 and {json.loads(line)["tag"] for line in lines} == set(TASKS)
    records = {r.metric: r for r in RunDir(run).metrics()}
    assert set(records) == {"geneval"} | {f"geneval/{t}" for t in TASKS}
    assert all(r.extractor == "geneval-animal" and r.reference.endswith("prompts.jsonl") for r in records.values())
    overall = records["geneval"]
    assert overall.value == pytest.approx(np.mean([records[f"geneval/{t}"].value for t in TASKS]))
    assert overall.ci95[0] <= overall.value <= overall.ci95[1]


def test_export_and_ingest_the_real_genevals_files(sampled, tmp_path):
    root, prompts, run = sampled
    out = tmp_path / "layout"
    assert runner.invoke(app, ["export", "geneval", str(run), str(out), "--metadata", str(prompts)]).exit_code == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [f"{p:05d}" for p in range(12)]
    assert json.loads((out / "00003" / "metadata.jsonl").read_text()) == [json.loads(line) for line in prompts.read_text().splitlines()][3]
    assert sorted(p.name for p in (out / "00003" / "samples").iterdir()) == ["0000.png", "0001.png"]
    r = runner.invoke(app, ["export", "geneval", str(run), str(tmp_path / "other"), "--metadata", str(PROMPTS_FILE)])
    assert r.exit_code == 2 and "was sampled from other prompts than" in r.output

    # a hand-made results file: the first 16 images correct, the rest not
    tags = [json.loads(line)["tag"] for line in prompts.read_text().splitlines() for _ in range(2)]
    made = tmp_path / "results.jsonl"
    made.write_text("".join(json.dumps({"filename": f"{i}.png", "tag": t, "correct": i < 16, "prompt": "x"}) + "\n"
                            for i, t in enumerate(tags)))
    assert runner.invoke(app, ["ingest", "geneval", str(made), "--run", str(run)]).exit_code == 0
    real = {r.metric: r.value for r in RunDir(run).metrics() if r.extractor == "geneval"}
    expected = {t: np.mean([i < 16 for i, tag in enumerate(tags) if tag == t]) for t in TASKS}
    assert real["geneval"] == pytest.approx(np.mean(list(expected.values())))  # GenEval's summary: mean of the tasks
    assert all(real[f"geneval/{t}"] == pytest.approx(v) for t, v in expected.items())


def test_geneval_refuses_class_runs_and_changed_prompts(sampled, tmp_path):
    root, prompts, run = sampled
    class_run = tmp_path / "class"
    save_model(SiT(preset("Tiny-test")), tmp_path / "c.safetensors")
    assert runner.invoke(app, ["sample", "-c", str(tmp_path / "c.safetensors"), "-n", "2", "--steps", "1", "-o", str(class_run)]).exit_code == 0
    r = runner.invoke(app, ["eval", "geneval", str(class_run)])
    assert r.exit_code == 2 and "is a class-conditional run" in r.output


def test_clip_score_of_a_text_run_uses_its_prompts(sampled, tmp_path):
    import open_clip

    _, _, run = sampled
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "sgbench-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "sgbench-tiny-clip.json")
    torch.save(open_clip.create_model("sgbench-tiny-clip", pretrained=None).state_dict(), tmp_path / "tiny.pt")
    r = runner.invoke(app, ["eval", "clip", str(run), "--model", "sgbench-tiny-clip", "--weights", str(tmp_path / "tiny.pt")])
    assert r.exit_code == 0, r.output
    (clip,) = [m for m in RunDir(run).metrics() if m.metric == "clip_score"]
    assert clip.num_samples == 24 and clip.ci95[0] <= clip.value <= clip.ci95[1]


def test_compare_keeps_text_runs_in_their_own_table(sampled, tmp_path):
    root, prompts, run = sampled
    assert runner.invoke(app, ["eval", "geneval", str(run), "--bootstrap", "20"]).exit_code == 0
    from test_results import make_run

    make_run(tmp_path / "runs", "cfg", method="cfg", fd=12.0, ci=1.0)
    r = runner.invoke(app, ["compare", str(run), str(tmp_path / "runs"), "-f", "markdown", "--reference", "paper"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    class_part, t2i_part = r.output.split("**Text-to-image")
    assert "FD against" in class_part and "cfg w=1.5" in class_part and "GenEval" not in class_part.split("Paper")[0]
    header = next(line for line in t2i_part.splitlines() if line.startswith("|  | tier"))
    assert "GenEval" in header and "FD" not in header and "cfg w=2" in t2i_part
    assert "Table 5" in t2i_part and "Table 2" in class_part  # the paper's GenEval table beside text runs
    loaded = results.load_runs([run, tmp_path / "runs"])
    assert results.kinds(loaded) == ["class", "t2i"]
    (t2i,) = results.leaderboard(loaded, kind="t2i").rows
    assert t2i.pareto and t2i.mean["geneval"] is not None and t2i.mean["fd"] is None


def test_a_text_bench_samples_a_stratified_subset_and_ranks_on_geneval(sampled, tmp_path):
    import yaml

    root, _, _ = sampled
    recipe = {
        "name": "t2i-tiny",
        "backbones": {"tiny": {"checkpoint": str(root / "model.safetensors")}},
        "configs": [{"label": "unguided", "guidance": "unguided"}, {"label": "CFG+SG", "guidance": "cfg+sg", "gs": 0.2, "gw": 0.7, "scale": 2.5}],
        "sampling": {"steps": 2, "batch_size": 64, "prompts": str(PROMPTS_FILE), "images_per_prompt": 1, "prompts_per_task": 1},
        "quick": {"configs": ["CFG+SG"], "prompts_per_task": 1},
        "full": {"images_per_prompt": 1, "prompts_per_task": 2},
        "out": str(tmp_path / "bench"),
    }
    (tmp_path / "t2i.yaml").write_text(yaml.safe_dump(recipe))
    r = runner.invoke(app, ["bench", str(tmp_path / "t2i.yaml"), "-f", "json"])
    assert r.exit_code == 0, r.output
    board = json.loads((tmp_path / "bench" / "full" / "leaderboard.json").read_text())
    assert [row["kind"] for row in board["rows"]] == ["t2i", "t2i"] and all(row["geneval"] is not None for row in board["rows"])
    subset = (tmp_path / "bench" / "full" / "prompts-1-per-task.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["tag"] for line in subset) == sorted(TASKS)  # one prompt of each task
    assert RunDir(tmp_path / "bench" / "full" / "tiny" / "CFG_SG").info().num_samples == 6
    r = runner.invoke(app, ["bench", str(tmp_path / "t2i.yaml"), "--full", "-f", "json"])
    assert r.exit_code == 0 and RunDir(tmp_path / "bench" / "protocol" / "tiny" / "CFG_SG").info().num_samples == 12
    again = runner.invoke(app, ["bench", str(tmp_path / "t2i.yaml")])
    assert again.exit_code == 0 and again.output.count("done already, kept") == 2
